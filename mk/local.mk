# The whole local loop at the dogImages seed's scale (README, Benchmarks): a generated tree of photo-sized
# JPEGs, then tune-local (4 trials) + retrain of the best + test evaluation, timed.
SEED_DATA ?= data/photo-tree

.PHONY: seed-data seed-loop

seed-data:  ## a dogImages-sized tree of photo-sized JPEGs (133 classes, 6,680/835/836 images) in SEED_DATA=data/photo-tree
	@test -d $(call quote,SEED_DATA)/train || $(PYTHON) -m scripts.data.photo_tree --out $(call quote,SEED_DATA)

seed-loop: seed-data  ## tune-local (4 trials) + retrain of the best + test evaluation on SEED_DATA, with the time of each step
	$(PYTHON) -m scripts.local.seed_loop --data $(call quote,SEED_DATA) --backbone $(call quote,DEMO_BACKBONE) \
	  $(if $(MAX_JOBS),--trials $(call quote,MAX_JOBS))
