"""Running a benchmark: datasets built and variants checked before anything runs, each run isolated (in this
process or its own), the suite resumed and reported, equal tuning, timed training steps. Imports the ``spec``
and ``report`` wings."""
