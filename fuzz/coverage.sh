#!/usr/bin/env bash
# Line and branch coverage (coverage.py) of the decoder's integer and format code by the fuzz
# corpora: every target's inputs replayed once (python fuzz/TARGET.py --replay, no atheris).
#
#   fuzz/coverage.sh            the committed seeds (fuzz/corpus/TARGET) and what fuzzing added
#                               (fuzz/out/TARGET/corpus, when there)
#   fuzz/coverage.sh seeds      the committed seeds only
#
# PYTHON (default: python) needs vaecodec's dev install and coverage (pip install coverage).
# The data goes to fuzz/out/.coverage; `coverage html --data-file=fuzz/out/.coverage` shows the lines.
set -uo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"
include='vaecodec/format/*,vaecodec/entropy/*,vaecodec/latent/*,vaecodec/model/fixed_point.py'
omit='vaecodec/latent/sga.py'  # the encoder's optimisation (--effort, torch): no decoder input reaches it
export COVERAGE_FILE=fuzz/out/.coverage
mkdir -p fuzz/out
rm -f fuzz/out/.coverage fuzz/out/.coverage.*
for target in decompress pillow_open info compress; do
    inputs=("fuzz/corpus/$target")
    [[ "${1:-}" != seeds && -d "fuzz/out/$target/corpus" ]] && inputs+=("fuzz/out/$target/corpus")
    "$python" -m coverage run --parallel-mode --branch --source=vaecodec "fuzz/$target.py" --replay "${inputs[@]}" \
        >"fuzz/out/$target.replay" 2>&1
    echo "$target: $(grep '^replayed' "fuzz/out/$target.replay") $(grep -E '^[0-9]+ failed' "fuzz/out/$target.replay" | cut -c1-200)"
done
"$python" -m coverage combine --quiet
"$python" -m coverage report --include="$include" --omit="$omit"
