"""Fixtures of the distributed tests: one local Ray per session, tiny slides."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with 2 CPUs, started once and shut down after the session."""
    pytest.importorskip("ray", reason="ray not installed (extra 'distributed')")
    import ray

    from hccstrat.distributed.ray_jobs import init_ray

    started = not ray.is_initialized()
    init_ray(num_cpus=2, object_store_mb=256)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def tiny_slides(tmp_path_factory):
    """Three small synthetic slides (a few tiles each) and one broken file."""
    from hccstrat.synthetic.wsi import default_latent, write_slide

    d = tmp_path_factory.mktemp("slides")
    for k in range(3):
        write_slide(d / f"s{k}.tiff", default_latent(), size=(768, 768), seed=k,
                    geojson=False, artefacts=False, texture_size=256)
    (d / "broken.svs").write_text("not a slide")
    return d
