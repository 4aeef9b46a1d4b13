

def test_stain_params_read_the_centre_table_vector_columns():
    import numpy as np

    from hccstrat.synthetic._centres import make_centres
    from hccstrat.synthetic._wsi_texture import StainParams

    row = make_centres(3, 1, np.random.default_rng(0)).iloc[1].to_dict()
    p = StainParams.from_mapping(row, np.random.default_rng(0))
    h = np.array([row["stain_h_r"], row["stain_h_g"], row["stain_h_b"]])
    e = np.array([row["stain_e_r"], row["stain_e_g"], row["stain_e_b"]])
    np.testing.assert_allclose(p.h_od, h / np.linalg.norm(h))
    np.testing.assert_allclose(p.e_od, e / np.linalg.norm(e))
    default = StainParams.from_mapping(None, np.random.default_rng(0))
    assert not np.allclose(p.h_od, default.h_od)  # the centre's own vector, not the default
