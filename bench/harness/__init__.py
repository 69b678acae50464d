"""The code behind bench/bench.py (`make bench`) and bench/restart_check.py, one module per concern."""
