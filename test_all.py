"""Tests for the whole project, in reading order."""


def test_modules_import_without_side_effects():
    import embeddings, attention, layers, model, schedules, losses, data, train, plots  # noqa: F401
    assert callable(train.main) and callable(plots.main)
