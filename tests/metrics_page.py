"""Scraping the Prometheus metrics page of a server under test."""

from tests.e2e_support import HOST, TIMEOUT_S

#: A metric sample's key: its name and its labels, sorted.
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def scrape_metrics(port: int, host: str = HOST) -> dict[SampleKey, float]:
    """Fetch ``http://host:port/metrics`` (no proxy) and return every sample's value."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{host}:{port}/metrics", timeout=TIMEOUT_S) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def samples_named(samples: dict[SampleKey, float], name: str) -> dict[tuple[str, ...], float]:
    """Return the values of the samples called ``name``, keyed by their label values."""
    return {
        tuple(value for _, value in labels): value_
        for (sample_name, labels), value_ in samples.items()
        if sample_name == name
    }
