#!/usr/bin/env bash
# The GPU run: build the wheels here and print the ONE device command.
#
#   bash benchmarks/gpu.sh            # build .whl/ (blackjax, numpyro), print the command, carry, timeout_s
#   bash benchmarks/gpu.sh --dry-run  # also run that command's script and arguments here: tiny T, this CPU
#
# The GPU image has Python 3.12 with jax and numpyro 0.21 but no blackjax (pnmcmc's NUTS kernel needs
# it), and no network: the wheels travel in .whl/ (git-ignored), named in `carry`. numpyro 0.22 travels
# to match this checkout. pnmcmc itself comes from the working tree (PYTHONPATH), its data included.
# ArviZ is not needed: ESS comes from numpyro.diagnostics (benchmarks/gpu.py says how).
#
# The command fits one call of at most 8 minutes: the script's own budget (--budget) ends the run
# inside `timeout`, and it rewrites its tables after every row, copying them to $OUT, so whatever
# happens the call returns the rows measured so far.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# The arguments of the device run and of the dry run alike.
ARGS=(--budget 440)

if [[ "${1:-}" == "--dry-run" ]]; then
    tmp=$(mktemp -d)
    "$PYTHON" benchmarks/gpu.py "${ARGS[@]}" --dry-run --results-dir "$tmp" --copy-to "$tmp/out"
    echo "dry run: tables in $tmp"
fi

WHEELS=(blackjax==1.7.1 numpyro==0.22.0)
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
rm -rf .whl && mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
du -sh .whl

SETUP='python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit; export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1; nvidia-smi -L;'
RUN="timeout 460 python3 benchmarks/gpu.py ${ARGS[*]} --copy-to \$OUT 2>&1 | tee \$OUT/gpu-log.txt; ls \$OUT"
cat <<EOF

Device command (run tool: carry [".whl"], timeout_s 480):

$SETUP $RUN

Then copy the returned gpu-<device>.md and .json into benchmarks/results/ and commit them
(benchmarks/README.md, GPU section).
EOF
