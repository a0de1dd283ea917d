"""What a benchmark's results say: summaries over seeds, tables, plots, curves and epoch times, from a results
payload. Imports only the ``spec`` wing."""
