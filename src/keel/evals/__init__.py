"""The evaluation harness: suites, runner, retrieval and generation metrics, gate, reports, comparison."""
