"""Deployment: ONNX export, TensorRT engine build, TensorRT and ONNX Runtime backends, quantize."""
