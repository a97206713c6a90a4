"""The parts every training loop is built from: configs, seeding and autocast, the best-epoch tracker and
the run folder (:class:`RunDir`)."""
