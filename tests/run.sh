#!/usr/bin/env bash
# Every check of the course, in one go. `make test` runs it after setting up .venv.
# conftest.py points HOME and the Jupyter, IPython and matplotlib dirs at a temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export PYTHONDONTWRITEBYTECODE=1

echo "== ruff on lib/, tests/ and benchmarks/"
"$bin/ruff" check --no-cache lib tests benchmarks

echo "== unit and grading tests, two at a time (pytest-xdist; a file's tests stay together)"
"$bin/python" -m pytest tests -q -n 2 --dist loadfile --durations=20  # and the 20 slowest

shopt -s nullglob
notebooks=(course/*.ipynb)
nbval=("$bin/python" -m pytest -q --nbval --nbval-current-env
       --nbval-sanitize-with tests/nbval_sanitize.cfg "${notebooks[@]}")
if (( ${#notebooks[@]} )); then
    # OpenBLAS (numpy), numpy's own SIMD loops, ATen, MKL and oneDNN (torch) pick their
    # kernels by CPU, so another CPU gives other last bits. The committed outputs must not
    # depend on them: run the lectures again with another code path forced, whichever this
    # CPU does not take natively. AVX-512 can only be forced where the CPU has it, so a CPU
    # without it gets older kernels (AVX without FMA, SSE4) instead.
    other_path=()
    if [[ "$(uname -m)" != x86_64 ]]; then
        why="skipped: the forced code paths are x86-64 ones, this is $(uname -m)"
    elif grep -q -m1 -w avx512f /proc/cpuinfo; then
        other_path=(OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
                    ONEDNN_MAX_CPU_ISA=AVX2 "NPY_DISABLE_CPU_FEATURES=X86_V4 AVX512_ICL AVX512_SPR")
        why="this CPU has AVX-512, so this pass forces the AVX2 kernels"
    else
        other_path=(OPENBLAS_CORETYPE=Sandybridge ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2
                    ONEDNN_MAX_CPU_ISA=SSE41 "NPY_DISABLE_CPU_FEATURES=X86_V3 X86_V4 AVX512_ICL AVX512_SPR")
        why="this CPU has no AVX-512 and cannot run those kernels, so this pass forces older ones (AVX without FMA, SSE4)"
    fi
    # The two passes run at the same time, one kernel each, so both cores are busy; each
    # writes its own log, printed below in order. Outputs do not depend on the number of
    # threads (TOOLCHAIN: bit-identical with 1 or 2).
    echo "== nbval on the ${#notebooks[@]} lecture notebooks, natively and on another CPU code path at once (logs follow)"
    logs=$(mktemp -d)
    trap 'rm -rf "$logs"' EXIT
    "${nbval[@]}" >"$logs/native" 2>&1 & native=$!
    if (( ${#other_path[@]} )); then
        env "${other_path[@]}" "${nbval[@]}" >"$logs/other" 2>&1 & other=$!
    fi
    native_rc=0 other_rc=0
    wait "$native" || native_rc=$?
    [[ -z "${other:-}" ]] || wait "$other" || other_rc=$?
    echo "== nbval, native code path"
    cat "$logs/native"
    if [[ -n "${other:-}" ]]; then
        echo "== nbval, another CPU code path: $why: ${other_path[*]}"
        cat "$logs/other"
    else
        echo "== second nbval pass $why"
    fi
    (( native_rc == 0 && other_rc == 0 )) || exit 1
else
    echo "== no lecture notebooks in course/ yet: nbval skipped"
fi

echo "== the course in JupyterLab, run in headless Chromium (skipped, with the reason, without one)"
"$bin/python" -m pytest tests/browser -q

echo "== a class on a JupyterHub, end to end in headless Chromium (root only; skipped, with the reason, otherwise)"
"$bin/python" -m pytest tests/hub -q
