"""What a benchmark is: its files (the suite, the tuned values, the results) and the runs a suite plans. Reads
files, runs nothing; imports nothing of the other wings."""
