"""Reading results: trial records, metrics, intervals, the decision."""
