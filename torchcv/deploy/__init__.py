"""Deployment: export (ONNX / TorchScript / torch.export) with a fixed contract per task, and int8
quantization (post-training and quantization-aware) behind one module."""
