"""The verdict: the decision and its seal, and what is made from it (report, CI summary, history,
promotion). The decision and the seal import nothing else of releasetest but files and errors."""
