"""Analysis tools of the figure and claim studies, as a library: tuning solver hyper-parameters,
matching trained layers to solver steps, order sensitivity, task-pool estimators and the like.
Each module's docstring states the math; its tests are in tests/analysis/."""
