"""smdebug's PyTorch hook on the model and the loss, as an observer of the training loop.

Built from the hyperparameters (the job definition's `debugger:` section), writing under
`/opt/ml/output/tensors`: collections losses, weights, biases, gradients, relu_output (the outputs of the
ReLU modules), saved every `debugger_train_interval` training steps and `debugger_eval_interval` evaluation
steps. A `/opt/ml/input/config/debughookconfig.json` (a job created with a DebugHookConfig) that names
collections sets the hook instead; one that names none (the SageMaker Python SDK's default) only sets where
the tensors go. The log and debugger/job.json say which, with each collection's save intervals.

With a frozen backbone (the default) the hook watches the trainable part, the head: the backbone's weights
never change and have no gradients, and saving them every interval would cost time and disk for nothing.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from .. import paths
from ..observers import Observer
from . import config
from .records import read_jsonl

log = logging.getLogger(__name__)
HOOK_CONFIG_FILE = "debughookconfig.json"


def import_smdebug():
    os.environ.setdefault("SMDEBUG_LOG_LEVEL", "warning")  # its INFO lines would flood the job log
    # A trial that sees the training-end marker sleeps this long before its last refresh (default 1 s);
    # the files are complete when this project reads them.
    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    import smdebug.pytorch as smd
    from smdebug import modes

    return smd, modes


def save_intervals(hook, collection, modes) -> dict:
    """{"train": N, "eval": M}: how often the hook saves the collection in each mode (collection None: the
    hook's own save config, which collections without one of their own follow); exact steps or a step
    range too, where smdebug was given them."""
    result = {}
    for name, mode in (("train", modes.TRAIN), ("eval", modes.EVAL)):
        own = collection.save_config.mode_save_configs.get(mode) if collection and collection.save_config else None
        setting = own or hook.save_config.get_save_config(mode)
        result[name] = setting.save_interval
        if setting.save_steps:
            result[f"{name}_steps"] = list(setting.save_steps)
        if setting.start_step or setting.end_step is not None:
            result[f"{name}_range"] = [setting.start_step, setting.end_step]
    return result


def describe_intervals(intervals: dict) -> str:
    """'losses, weights every 100 train / 10 eval steps; gradients every 7 train / 4 eval steps'."""
    groups: dict[str, list[str]] = {}
    for name, setting in intervals.items():
        text = f"every {setting['train']} train / {setting['eval']} eval steps"
        extra = {k: v for k, v in setting.items() if k not in ("train", "eval")}
        if extra:
            text += " (" + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(extra.items())) + ")"
        groups.setdefault(text, []).append(name)
    return "; ".join(f"{', '.join(names)} {text}" for text, names in groups.items()) or "nothing"


def clear_unfinished_run(out_dir: Path) -> None:
    """Remove what a killed run of this job left in smdebug's output folder that would stop this run.

    smdebug writes from the process that creates `claim.smd` first (O_EXCL) and removes the file when its
    hook closes: a run killed before that leaves it behind, and the resumed run's hook would save nothing.
    Only the job's main process has a hook, so a claim found before the first step is always stale. Also
    removed: the `.tmp` files of a step cut short, and the training-end marker of a run killed after its
    hook closed (smdebug's Hook refuses a folder that has one; the hook writes it again when it closes).
    """
    from smdebug.core.access_layer.utils import END_OF_JOB_FILENAME
    from smdebug.core.config_constants import CLAIM_FILENAME

    if not out_dir.is_dir():
        return
    markers = [out_dir / name for name in (CLAIM_FILENAME, END_OF_JOB_FILENAME) if (out_dir / name).exists()]
    unfinished = sorted(out_dir.rglob("*.tmp"))
    for path in markers + unfinished:
        path.unlink(missing_ok=True)
    if markers or unfinished:
        removed = [p.name for p in markers] + ([f"{len(unfinished)} unfinished .tmp file(s)"] if unfinished else [])
        log.warning("smdebug output %s: removed %s, left by an earlier run of this job that did not end",
                    out_dir, ", ".join(removed))


def relu_modules(module) -> list:
    """(name, module) of each ReLU/ReLU6 module once (a block may call one module several times)."""
    import torch

    seen, found = set(), []
    for name, m in module.named_modules():
        if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)) and id(m) not in seen:
            seen.add(id(m))
            found.append((name, m))
    return found


def register_watched(hook, module, output_modules: list) -> None:
    """smdebug's `register_module`, trimmed to what our collections use.

    The step counter and the weights and biases come from the hook on the module itself, gradients from
    hooks on its parameters, ReLU outputs from hooks on the ReLU modules. smdebug's own registration also
    hooks every other submodule (for its timeline, which this project does not use): that costs Python
    time at every step of a large model and saves nothing we read.
    """
    for name, submodule in module.named_modules():
        submodule._module_name = name
        hook.module_set.add(submodule)
    module._module_name = module._get_name()
    module.register_forward_pre_hook(hook.forward_pre_hook)
    module.register_forward_hook(hook.fhook)
    module.register_forward_hook(hook.forward_hook)  # the step's end: custom tensors, last saved step
    for submodule in output_modules:
        submodule.register_forward_hook(hook.forward_hook)
    hook._backward_apply(module)
    hook.has_registered_module = True


def trained_parts(model) -> list[str] | None:
    """The backbone parts that train when only some do (partial fine-tuning), else None."""
    parts = getattr(model, "trained_parts", None)
    return list(parts) if parts and parts != [""] else None


def only_trained_weights(hook, model, parts: list[str]) -> None:
    """With partial fine-tuning the hook is on the whole model (it counts the steps there), but the frozen
    stages' weights never change: the weights and biases collections keep to the head and trained parts.
    (Gradients exist for trained parameters only anyway.)"""
    names = "|".join(["head", *(re.escape(f"backbone.{part}") for part in parts)])
    for collection, suffix in (("weights", "weight"), ("biases", "bias")):
        hook.get_collection(collection).include_regex = [f"^{model._get_name()}_({names})\\..*{suffix}$"]


class HookObserver(Observer):
    """Creates and drives the smdebug hook; the rules read what it writes."""

    def __init__(self, hp, layout: config.Layout):
        self.hp, self.layout = hp, layout
        self.hook = None
        self.modes = None
        self.train_steps = 0  # smdebug mode steps of this process, to check the offsets after a resume
        self.described: dict = {}

    # -- creation ------------------------------------------------------------------------------------------
    def _create_hook(self):
        """smdebug's hook and where its settings come from.

        A debughookconfig.json that names collections sets the hook (smdebug reads it: its collections and
        save intervals, smdebug's default 500 steps where it gives none). One that names none is what the
        SageMaker Python SDK attaches by default (an empty DebugHookConfig), not a choice: the hook then
        takes the job's own settings (debugger_collections, debugger_*_interval), writing to its LocalPath.
        """
        smd, modes = import_smdebug()
        from smdebug.core.config_constants import DEFAULT_SAGEMAKER_OUTDIR

        json_file = paths.config_dir() / HOOK_CONFIG_FILE
        sagemaker = json.loads(json_file.read_text()) if json_file.is_file() else None
        from_json = bool(sagemaker and sagemaker.get("CollectionConfigurations"))
        out_dir = (sagemaker or {}).get("LocalPath") or (DEFAULT_SAGEMAKER_OUTDIR if from_json
                                                         else str(self.layout.tensors))
        clear_unfinished_run(Path(out_dir))  # before the hook: smdebug refuses a folder with an end marker
        if from_json:
            return smd.Hook.create_from_json_file(json_file_path=str(json_file)), modes, str(json_file)
        source = "hyperparameters"
        if sagemaker is not None:
            source = f"hyperparameters ({json_file} names no collections)"
            ignored = sorted(sagemaker.get("HookParameters") or {})
            if ignored:
                log.warning("%s names no collections: its HookParameters %s are not used, the hook takes the "
                            "job's debugger_* hyperparameters (a DebugHookConfig with CollectionConfigurations "
                            "sets the hook)", json_file, ", ".join(ignored))
        save = smd.SaveConfig(mode_save_configs={
            modes.TRAIN: smd.SaveConfigMode(save_interval=self.hp.debugger_train_interval),
            modes.EVAL: smd.SaveConfigMode(save_interval=self.hp.debugger_eval_interval),
        })
        hook = smd.Hook(out_dir=out_dir, save_config=save,
                        include_collections=config.split_names(self.hp.debugger_collections))
        return hook, modes, source

    def on_train_start(self, model, loss_fn, context):
        try:
            self._start(model, loss_fn)
        except Exception as error:  # the debugger never takes the training job down
            log.warning("smdebug hook not started, tensors are not saved: %s: %s", type(error).__name__, error)
            self.hook, self.described = None, {}

    def _start(self, model, loss_fn):
        import torch

        hook, self.modes, source = self._create_hook()
        frozen = getattr(model, "backbone_frozen", False) and hasattr(model, "head")
        watched = model.head if frozen else model
        watched_name = "head" if frozen else "model"
        head_only = self.hp.debugger_relu_modules == "head" and hasattr(model, "head")
        parts = trained_parts(model)
        if head_only:
            relus = relu_modules(model.head)
        elif parts is not None:  # partial fine-tuning: the ReLUs of what trains
            relus = [r for module in [model.head, *model.trained_backbone_modules()] for r in relu_modules(module)]
        else:
            relus = relu_modules(watched)
        register_watched(hook, watched, [m for _, m in relus])
        if parts is not None:
            watched_name = "model (weights of the head and " + ", ".join(parts) + ")"
            only_trained_weights(hook, model, parts)
        # The loss: register_loss wants a torch `_Loss`; ours is a plain Module, so do what it does.
        if isinstance(loss_fn, torch.nn.modules.loss._Loss):
            hook.register_loss(loss_fn)
        else:
            loss_fn._module_name = loss_fn._get_name()
            hook.module_set.add(loss_fn)
            loss_fn.register_forward_hook(hook.forward_hook)
            hook.has_registered_loss_module = True
        losses = hook.get_collection("losses")
        losses.include(f"^{loss_fn._get_name()}_output_0$")
        # ReLU outputs: by module (smdebug's default regex '.*relu_output' matches no module name of ours).
        relu_names = []
        if "relu_output" in hook.collection_manager.collections or "relu_output" in (hook.include_collections or []):
            if self.hp.debugger_relu_modules == "all" and frozen:
                log.info("debugger_relu_modules=all with a frozen backbone: only the head is watched")
            collection = hook.get_collection("relu_output")
            for name, module in relus:
                collection.add_module_tensors(module, inputs=False, outputs=True)
                relu_names.append(name)
        self._resume_offsets(hook)
        self.hook = hook
        collections = sorted(hook.include_collections or [])
        intervals = {name: save_intervals(hook, hook.get_collection(name), self.modes) for name in collections}
        default = save_intervals(hook, None, self.modes)
        self.described = {
            "source": source, "out_dir": str(hook.out_dir), "watched": watched_name,
            "train_interval": default["train"], "eval_interval": default["eval"],  # the hook's own save config
            "collections": collections, "intervals": intervals,  # each collection's, as the hook applies them
            "relu_modules": relu_names, "loss_tensor": f"{loss_fn._get_name()}_output_0",
        }
        log.info("smdebug hook from the %s, on the %s: saves %s; to %s", source, watched_name,
                 describe_intervals(intervals), self.described["out_dir"])

    def _resume_offsets(self, hook) -> None:
        """A resumed job continues the step numbers of the earlier run(s), as its epochs record them."""
        records = read_jsonl(self.layout.epochs_file)
        if not records:
            return
        last = records[-1]
        next_train, next_eval = last["train_steps"][1] + 1, last["eval_steps"][1] + 1
        hook.set_mode(self.modes.TRAIN)
        hook.mode_steps[self.modes.TRAIN] = next_train - 1
        hook.set_mode(self.modes.EVAL)
        hook.mode_steps[self.modes.EVAL] = next_eval - 1
        hook.step = hook.mode_steps[self.modes.GLOBAL] = next_train + next_eval - 1
        self.train_steps = next_train
        log.info("smdebug hook resumes at train step %d, eval step %d", next_train, next_eval)

    # -- during training ----------------------------------------------------------------------------------
    def on_mode(self, mode):
        if self.hook is not None:
            self.hook.set_mode(self.modes.TRAIN if mode == "train" else self.modes.EVAL)

    def on_train_step(self, step, timings, loss, labels, log_probs):
        if self.hook is None:
            return
        # The loop's step number is the truth (a resume after a crash inside an epoch redoes its steps).
        current = self.hook.mode_steps.get(self.modes.TRAIN, -1)
        if current != step:
            self.hook.step += step - current
            self.hook.mode_steps[self.modes.TRAIN] = step

    def on_epoch_end(self, epoch, metrics):
        self.flush()
        return None

    def flush(self) -> None:
        """Close the open step's writers, so the rules see everything saved so far."""
        if self.hook is not None and self.hook.writer is not None:
            self.hook._close_writers()

    def on_train_end(self, summary):
        if self.hook is None:
            return
        self.hook.close()
        self.export_tensors()

    def export_tensors(self) -> None:
        """Copy the tensors into the output data dir (so they reach output.tar.gz), when not too large."""
        limit = self.hp.debugger_export_max_mb
        source = Path(self.described.get("out_dir", self.layout.tensors))
        target = self.layout.debugger / "tensors"
        if limit <= 0 or not source.is_dir() or source.resolve() == target.resolve():
            return
        size = sum(f.stat().st_size for f in source.rglob("*") if f.is_file())
        if size > limit * 1024 * 1024:
            log.warning("smdebug tensors (%.0f MB) exceed debugger_export_max_mb=%d: not copied to the output "
                        "data; offline rules need %s", size / 2**20, limit, source)
            return
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        log.info("Copied the smdebug tensors (%.1f MB) to %s", size / 2**20, target)
