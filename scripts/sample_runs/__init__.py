"""The parts of the sample data that ``make_sample_data.py`` writes: the runs, and the defects."""
