"""Deployment: export (ONNX / TorchScript / torch.export) with a fixed contract per task, and int8
quantization (post-training and quantization-aware) behind one module. Importing it registers the
int8 / QAT models and the QAT hook."""
from torchcv.utils.imports import import_submodules

import_submodules(__name__, __path__)
