"""Kafka ingestion of new exams: the ingest worker (load, de-identify, encode, upsert, publish, commit), its
producers (`cmr ingest`, the Orthanc bridge), the event messages and a local Kafka-protocol broker (Tansu).

One job per module:
    messages   config-free logic: building and decoding the events, record keys, stages, failure kinds
    fetch      reading a study reference: folder, zip, file:// or a DICOMweb study URL
    deid       DICOM PS3.15 basic-profile de-identification (dicognito + what the profile adds)
    pipeline   one study through the stages, timed
    worker     the consumer loop: retries, dead letters, commits, graceful stop
    metrics    Prometheus counters, histograms and lag
    producer   finding studies under paths and publishing them
    orthanc    a private Orthanc for tests and the stack, and the bridge that publishes its stable studies
    broker     the Tansu broker (tests, `cmr up`)
"""
