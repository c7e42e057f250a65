"""LivePortrait on an NVIDIA GPU with PyTorch CUDA: speed and fp16 fidelity, in-process and inside Triton's
python backend (the GPU measurements the TensorRT path is compared with). Run: python -m bench.gpu --help"""
