#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv (torch CPU build first, then the core and every pack),
# train the customer-service starter intents on the embedded all-MiniLM-L6-v2 (no network), and answer a
# few queries — the last one clearly out of scope.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
BUNDLE="${BUNDLE:-runs/customer-service-starter}"
.venv/bin/verticals train customer_service.intent \
  --train examples/customer_service/train.csv \
  --set task.faq=examples/customer_service/faq.csv \
  --output "$BUNDLE" --overwrite
.venv/bin/verticals predict "$BUNDLE" \
  "where is my parcel, it was supposed to arrive yesterday" \
  "I want my money back for this order" \
  "how do I change the password of my account" \
  "what is the capital of Mongolia"
