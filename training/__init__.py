"""The reproducible recipe behind the bundled demo model, and the detection evaluator (`roadedge train`, `roadedge eval`)."""
