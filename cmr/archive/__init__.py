"""A hospital's own archive into a training data directory (`cmr dataset import`): the RIS report export
(`reports`), impression extraction (`impression`), report de-identification (`scrub`), one study's import
(`study`), the resumable parallel import (`importer`), the dataset card (`card`), silver-label evaluation
(`silver`). See docs/archive-import.md."""
