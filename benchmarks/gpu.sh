#!/usr/bin/env bash
# The GPU part of the performance study (issue 6): build the wheels here, print the device commands.
#
#   bash benchmarks/gpu.sh            # build .whl/ (blackjax, arviz + missing deps, numpyro, pnmcmc)
#                                     # and print the commands for the device `run` tool
#   bash benchmarks/gpu.sh --dry-run  # also run the exact GPU argument lists here on the CPU, tiny T
#
# The GPU image has Python 3.12 with jax and numpyro (0.21) but neither blackjax nor arviz, and no
# network: the wheels travel in .whl/ (ignored by git through .git/info/exclude) named in `carry`.
# run.py does not import arviz; its wheels come along so that the rest of pnmcmc works there too.
# numpyro 0.22 travels to match this checkout's tests. Each call stays under 10 minutes:
# the GPU preset is split into three calls with --append; after each call copy the returned files
# into benchmarks/results/ here, so that the next call's --append (and best_ratio, which reads
# cpu.json) sees them.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(blackjax==1.7.1 arviz==0.23.4 numpyro==0.22.0 h5netcdf xarray-einstats platformdirs)
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.whl/' >> .git/info/exclude; }
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
python3 -m pip wheel -q --no-deps -w .whl .
ls -la .whl
du -sh .whl

# One call of the device `run` tool each (command <= 2000 characters, carry [".whl"], timeout_s 600).
# Groups are the indices printed by `python benchmarks/run.py --preset gpu --dry-run`.
SETUP='python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false; nvidia-smi -L;'
FINISH='; cp benchmarks/results/h1*.md benchmarks/results/h1*.json benchmarks/results/h1*.png $OUT/ 2>/dev/null; ls $OUT'
RUN='timeout 560 python3 benchmarks/run.py --device gpu --preset gpu --append --time-budget 30 --memory-limit 40'
cat <<EOF

Device commands (run tool, carry [".whl"], timeout_s 600), in order; copy the returned files into
benchmarks/results/ after each:

1. $SETUP $RUN --groups 0 1 2 2>&1 | grep -vi warning $FINISH
2. $SETUP $RUN --groups 3 4 5 2>&1 | grep -vi warning $FINISH
3. $SETUP $RUN --groups 6 7 8 2>&1 | grep -vi warning $FINISH

4. $SETUP timeout 560 python3 benchmarks/kernels.py --targets banana mixture nuts --solvers DEER 'DEER(segment=16)' 'DEER(segment=64)' 'Jacobi(segment=16)' --repeats 3 --time-budget 20 --max-iterations 1000 2>&1 | grep -vi warning; cp benchmarks/results/kernels-gpu* \$OUT/; ls \$OUT

Optional 5th call, float32 (as the published A100 numbers): same as 1 with --float32 added.
EOF

if [[ "${1:-}" == "--dry-run" ]]; then
    # The exact GPU argument lists, on this CPU with tiny T, into a scratch results file.
    for groups in "0 1 2" "3 4 5" "6 7 8"; do
        python3 benchmarks/run.py --preset gpu --append --time-budget 30 --groups $groups \
            --memory-limit 40 --steps 256 --name gpu-dry-run --repeats 1
    done
    rm -f benchmarks/results/gpu-dry-run*
fi
