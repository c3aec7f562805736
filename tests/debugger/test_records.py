"""The debugger's record files survive a run killed in the middle of a line."""
from classifier.debugger.records import append_jsonl, open_append, read_csv_columns, read_jsonl


def test_a_line_cut_short_by_a_killed_run_does_not_spoil_the_next_runs_records(tmp_path):
    epochs = tmp_path / "debugger" / "epochs.jsonl"
    append_jsonl(epochs, {"epoch": 1, "train_loss": 1.0})
    with open(epochs, "a") as handle:
        handle.write('{"epoch": 2, "train_lo')  # killed while writing
    append_jsonl(epochs, {"epoch": 2, "train_loss": 0.5})  # the resumed run redoes epoch 2
    assert read_jsonl(epochs) == [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}]

    steps = tmp_path / "profiler" / "step_timings.csv"
    with open_append(steps) as handle:
        handle.write("step,loss\n0,1.5\n1,1")  # killed while writing
    with open_append(steps) as handle:
        handle.write("1,1.25\n")  # the resumed run's first row, on a line of its own
    columns = read_csv_columns(steps)
    assert columns["step"].tolist()[-1] == 1 and columns["loss"].tolist()[-1] == 1.25
