"""The network in a CPU inference runtime's formats, beside `model.pth`: OpenVINO fp32 and int8.

- `formats`: the formats, how model_config.json records them, which one an endpoint serves (torch-free);
- `openvino_model`: an exported format compiled for OpenVINO's CPU plugin (serving, evaluation, the gate);
- `convert`: PyTorch -> OpenVINO IR, and NNCF's int8 post-training quantisation (training image only);
- `gate`: the accuracy gate each exported format must pass on the valid images to be served;
- `main`: `export_model` (end of a training job) and `python -m classifier.export` (`make export`).

OpenVINO was chosen over ONNX Runtime by measurement (docs/measurements.md) and because it converts the
torch module itself: the `onnx` package that ONNX Runtime's export and quantisation need cannot share the
training image with smdebug's protobuf 3.20 pin.
"""
