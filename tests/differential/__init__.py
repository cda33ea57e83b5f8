"""Differential fuzzing of qsim.simulate against onnxruntime and LiteRT (see README, "Differential testing")."""
