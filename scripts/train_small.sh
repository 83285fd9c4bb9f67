#!/usr/bin/env bash
# Reproduce the shipped cmr-clip-small checkpoint and its evaluation (2 CPU cores; about 2 hours in all,
# most of it generating DICOM studies). Every step is resumable: re-run the script after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
CMR=.venv/bin/cmr
DATA=${CMR_BENCH_DIR:-data/bench}
N_TRAIN=${N_TRAIN:-1000}
N_TEST_HELDOUT=${N_TEST_HELDOUT:-500}
N_TEST_INSTYLE=${N_TEST_INSTYLE:-500}

# 1. Training data: every scanner style except the held-out one, training phrasings.
$CMR synth --out "$DATA/train" --studies "$N_TRAIN" --seed 11 --scanner training --phrasing train
# 2. Exam tensors once, then train (stops at 22 minutes on its own; see cmr/model/configs/small.json). The
#    tissue-map cache for domain randomisation (aug_tissue_render) is built on the first run, beside the exam cache.
$CMR cache "$DATA/train" --config small
[ -f "$DATA/runs/small/last.pt" ] && RESUME=--resume || RESUME=
$CMR train --config small --data "$DATA/train" --out "$DATA/runs/small" $RESUME
# 3. Test data: the held-out scanner style and held-out phrasings; plus training styles for the domain-shift
#    comparison. Together they are the retrieval pool.
$CMR synth --out "$DATA/test_heldout" --studies "$N_TEST_HELDOUT" --seed 2 --scanner heldout --phrasing heldout
$CMR synth --out "$DATA/test_instyle" --studies "$N_TEST_INSTYLE" --seed 3 --scanner training --phrasing heldout
$CMR cache "$DATA/test_heldout" --config small
$CMR cache "$DATA/test_instyle" --config small
# 4. Evaluate (writes results.json, docs/model/*.md and figures).
$CMR eval --data "$DATA/test_heldout" --data "$DATA/test_instyle" --checkpoint "$DATA/runs/small/best.pt" \
    --out "$DATA/runs/small/results.json"
# 5. Zero-shot calibration on synthetic data only (never on ACDC), beside the checkpoint.
$CMR calibrate --checkpoint "$DATA/runs/small/best.pt" --data "$DATA/test_instyle" --assess "$DATA/test_heldout"
# 6. Real scans, evaluation only (needs ../shared/realdata; measures each ACDC study once with the shipped
#    segmenter, then reuses it). To ship: copy best.pt and its calibration into cmr/model/weights/, then retrain
#    CMR-TARGET on it (`cmr train-generator --data "$DATA/train" --out RUN --tune-data "$DATA/test_instyle"`).
$CMR eval-real --checkpoint "$DATA/runs/small/best.pt" --out "$DATA/runs/small/real.json"
