"""Deployment: ONNX export, int8 quantization, the onnxruntime backend and the choice of backend."""
