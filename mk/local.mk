# The whole local loop at the dogImages seed's scale (docs/local-mode.md; its figures in docs/measurements.md):
# a generated tree of photo-sized JPEGs, then tune-local (4 trials) + retrain of the best + test evaluation, timed.
# SEED_SCALE=0.2 makes a fifth of the tree (1,336 / 167 / 167 images) in data/photo-tree-0.2.
SEED_SCALE ?= 1
SEED_DATA ?= data/photo-tree$(if $(filter-out 1,$(SEED_SCALE)),-$(SEED_SCALE))

.PHONY: seed-data seed-loop

seed-data:  ## a dogImages-sized tree of photo-sized JPEGs (133 classes, 6,680/835/836 images) in SEED_DATA [SEED_SCALE=0.2]
	@test -d $(call quote,SEED_DATA)/train || $(call quote,PYTHON) -m scripts.data.photo_tree --out $(call quote,SEED_DATA) \
	  --scale $(call quote,SEED_SCALE)

seed-loop: seed-data  ## tune-local (4 trials) + retrain of the best + test evaluation on SEED_DATA, with the time of each step
	$(call quote,PYTHON) -m scripts.local.seed_loop --data $(call quote,SEED_DATA) --backbone $(call quote,DEMO_BACKBONE) \
	  $(if $(MAX_JOBS),--trials $(call quote,MAX_JOBS))
