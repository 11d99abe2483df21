"""Build torchcv._C (C++/CUDA operators) in place: torchcv/_C.<abi>.so.

Normally invoked through ``bash extensions/make.sh``; directly:

    python extensions/setup.py build_ext --inplace

Environment:
    CPU_ONLY=1            never compile CUDA kernels
    FORCE_CUDA=1          compile CUDA kernels even if the auto-detection says no
    CUDA_HOME=...         CUDA toolkit (default: nvcc on PATH, then /usr/local/cuda)
    TORCH_CUDA_ARCH_LIST  GPU architectures (default "8.0;9.0")
    MAX_JOBS              parallel compile jobs (default: number of CPUs)
"""
import glob
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join("extensions", "csrc")


def _find_cuda_home():
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home:
        return home
    if os.path.exists("/usr/local/cuda/bin/nvcc"):
        return "/usr/local/cuda"
    nvcc = shutil.which("nvcc")
    if nvcc:
        cand = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
        if os.path.exists(os.path.join(cand, "include", "cuda_runtime.h")):
            return cand
    return None


def _pip_cuda_include_dirs():
    """Headers of the pip CUDA wheels (nvidia/*/include), for toolkits that lack e.g. cusparse.h."""
    try:
        import nvidia  # namespace package installed with CUDA builds of torch
    except ImportError:
        return []
    dirs = []
    for base in list(getattr(nvidia, "__path__", [])):
        dirs += sorted(d for d in glob.glob(os.path.join(base, "*", "include")) if os.path.isdir(d))
    return dirs


def want_cuda():
    """Decide whether to build the CUDA kernels (no GPU needed, only nvcc + CUDA torch)."""
    if os.environ.get("CPU_ONLY", "0") == "1":
        return False
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    import torch

    home = _find_cuda_home()
    return bool(torch.version.cuda) and home is not None and os.path.exists(
        os.path.join(home, "bin", "nvcc")
    )


def main():
    os.chdir(ROOT)
    cuda_home = _find_cuda_home()
    if cuda_home:
        # must be set before torch.utils.cpp_extension is imported
        os.environ["CUDA_HOME"] = cuda_home
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")

    from setuptools import setup
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    with_cuda = want_cuda()
    sources = sorted(glob.glob(os.path.join(CSRC, "*.cpp")) + glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    cxx_flags = ["-O3", "-g0", "-ffp-contract=off", "-fopenmp", "-fvisibility=hidden"]
    define_macros = []
    include_dirs = [os.path.join(ROOT, CSRC)]
    extra_compile_args = {"cxx": cxx_flags}
    if with_cuda:
        sources += sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
        define_macros.append(("TORCHCV_WITH_CUDA", None))
        extra_compile_args["nvcc"] = [
            "-O3",
            "--fmad=false",  # same rounding as the CPU kernels
            "--expt-relaxed-constexpr",
            "-lineinfo",
        ]
        ext_cls = CUDAExtension
        if not os.path.exists(os.path.join(cuda_home or "", "include", "cusparse.h")):
            # -isystem: searched after the toolkit's own -I headers, so only fills gaps
            for d in _pip_cuda_include_dirs():
                cxx_flags += ["-isystem", d]
                extra_compile_args["nvcc"] += ["-isystem", d]
    else:
        ext_cls = CppExtension

    ext = ext_cls(
        name="torchcv._C",
        sources=sources,
        include_dirs=include_dirs,
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
        extra_link_args=["-fopenmp"],
    )
    print(
        f"[torchcv] building torchcv._C with_cuda={with_cuda} cuda_home={cuda_home} "
        f"arch={os.environ.get('TORCH_CUDA_ARCH_LIST') if with_cuda else '-'}",
        flush=True,
    )
    setup(
        name="torchcv-ops",
        version="0.1.0",
        ext_modules=[ext],
        cmdclass={"build_ext": BuildExtension},  # uses ninja when it is on PATH
        options={"build": {"build_base": os.path.join("extensions", "build")}},
        script_args=sys.argv[1:] or ["build_ext", "--inplace"],
    )


if __name__ == "__main__":
    main()
