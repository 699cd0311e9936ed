"""The heads (pricetune.components.heads): linear and quantile; mlp, lstm
and gru (point or non-crossing quantile outputs); student_t (a distribution
head). The head contract for each, and each inside the forecaster, saved
and loaded."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from pricetune import FineTunedPriceForecaster
from pricetune.components.heads import (
    DEFAULT_QUANTILES,
    GRUHead,
    LinearHead,
    LSTMHead,
    MLPHead,
    QuantileHead,
    StudentTHead,
)

SHAPE = {"hidden_size": 6, "n_patches": 5, "horizon": 4}

PROJECTED = [MLPHead, LSTMHead, GRUHead]


def _hidden(batch=32, scale=10.0):
    return torch.randn(batch, SHAPE["n_patches"], SHAPE["hidden_size"]) * scale


# --------------------------------------------------------- linear and quantile
def test_quantile_head_shapes_and_no_crossing():
    torch.manual_seed(0)
    head = QuantileHead(
        hidden_size=8, n_patches=5, horizon=4, quantiles=[0.1, 0.5, 0.9]
    )
    output = head(torch.randn(64, 5, 8) * 10)
    assert output.shape == (64, 4, 3)
    assert output.dtype == torch.float32
    assert (output.diff(dim=-1) >= 0).all()


def test_untrained_quantile_head_starts_at_standard_normal_quantiles():
    levels = [0.1, 0.5, 0.9]
    head = QuantileHead(hidden_size=3, n_patches=2, horizon=2, quantiles=levels)
    torch.nn.init.zeros_(head.projection.weight)
    output = head(torch.randn(1, 2, 3))[0, 0]
    expected = torch.tensor([NormalDist().inv_cdf(q) for q in levels])
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)


def test_quantile_levels_are_validated():
    for bad, message in [
        ([0.5], "at least two"),
        ([0.0, 0.5], r"\(0, 1\)"),
        ([0.6, 0.4], "increasing"),
    ]:
        with pytest.raises(ValueError, match=message):
            QuantileHead(hidden_size=2, n_patches=1, horizon=1, quantiles=bad)


def test_linear_head_losses():
    head = LinearHead(hidden_size=2, n_patches=3, horizon=2, loss="mae")
    prediction = torch.tensor([[[1.0], [2.0]]])
    target = torch.tensor([[2.0, 0.0]])
    assert float(head.loss(prediction, target)) == pytest.approx(1.5)
    assert head(torch.randn(7, 3, 2)).shape == (7, 2, 1)
    with pytest.raises(ValueError, match="loss must be one of"):
        LinearHead(hidden_size=2, n_patches=3, horizon=2, loss="mape")


def test_linear_and_quantile_heads_keep_their_parameter_names():
    """Models saved before the output layer was shared still load."""
    for head in (LinearHead(**SHAPE), QuantileHead(**SHAPE)):
        assert sorted(head.state_dict()) == ["projection.bias", "projection.weight"]


# -------------------------------------------------------------- mlp, lstm, gru
@pytest.mark.parametrize("cls", PROJECTED)
def test_quantile_outputs_have_the_contract_shape_and_never_cross(cls):
    torch.manual_seed(0)
    head = cls(**SHAPE, quantiles=[0.1, 0.5, 0.9])
    assert cls.probabilistic and head.quantiles == (0.1, 0.5, 0.9)
    output = head(_hidden())
    assert output.shape == (32, 4, 3) and head.n_outputs == 3
    assert output.dtype == torch.float32
    assert (output.diff(dim=-1) >= 0).all()
    loss = head.loss(output, torch.randn(32, 4))
    assert loss.shape == () and loss > 0
    loss.backward()
    assert all(p.grad is not None for p in head.parameters())


@pytest.mark.parametrize("cls", PROJECTED)
def test_default_is_thirteen_quantiles_and_none_gives_a_point_head(cls):
    assert cls(**SHAPE).quantiles == DEFAULT_QUANTILES
    point = cls(**SHAPE, quantiles=None, loss="mae")
    assert point.quantiles is None and point.n_outputs == 1
    output = point(_hidden(7))
    assert output.shape == (7, 4, 1)
    target = torch.randn(7, 4)
    expected = (output[..., 0] - target).abs().mean()
    torch.testing.assert_close(point.loss(output, target), expected)
    # mse by default
    mse = cls(**SHAPE, quantiles=None)
    prediction = mse(_hidden(7))
    torch.testing.assert_close(
        mse.loss(prediction, target), ((prediction[..., 0] - target) ** 2).mean()
    )


@pytest.mark.parametrize("cls", PROJECTED)
def test_options_are_checked(cls):
    with pytest.raises(ValueError, match="pinball"):
        cls(**SHAPE, loss="mae")  # quantile outputs: the loss is fixed
    with pytest.raises(ValueError, match="loss must be one of"):
        cls(**SHAPE, quantiles=None, loss="mape")
    with pytest.raises(ValueError, match="increasing"):
        cls(**SHAPE, quantiles=[0.9, 0.1])
    with pytest.raises(TypeError):
        cls(**SHAPE, hidden=3)  # unknown keywords are errors


def test_mlp_layers_and_checks():
    head = MLPHead(**SHAPE, hidden_sizes=[16, 8], activation="relu", dropout=0.1)
    linears = [m for m in head.layers if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(30, 16), (16, 8)]
    assert head.projection.in_features == 8
    with pytest.raises(ValueError, match="at least one"):
        MLPHead(**SHAPE, hidden_sizes=[])
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPHead(**SHAPE, activation="swish")


@pytest.mark.parametrize("cls", [MLPHead, LSTMHead, GRUHead, QuantileHead])
def test_untrained_quantile_outputs_start_at_standard_normal_quantiles(cls):
    levels = [0.1, 0.5, 0.9]
    head = cls(**SHAPE, quantiles=levels)
    torch.nn.init.zeros_(head.projection.weight)
    output = head(_hidden(2))[0, 0]
    expected = torch.tensor([NormalDist().inv_cdf(q) for q in levels])
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("cls", "rnn"), [(LSTMHead, torch.nn.LSTM), (GRUHead, torch.nn.GRU)]
)
def test_recurrent_heads_read_the_sequence_in_order(cls, rnn):
    torch.manual_seed(0)
    head = cls(**SHAPE, rnn_size=12, num_layers=2, quantiles=None).eval()
    assert isinstance(head.rnn, rnn)
    assert (head.rnn.input_size, head.rnn.hidden_size) == (6, 12)
    assert head.rnn.num_layers == 2 and head.projection.in_features == 12
    hidden = _hidden(3, 1.0)
    # a recurrent layer, not a pooling: the order of the patches matters
    assert not torch.allclose(head(hidden), head(hidden.flip(1)))


# ------------------------------------------------------------------- student_t
def _student_t_output(batch=16, seed=0):
    torch.manual_seed(seed)
    head = StudentTHead(**SHAPE)
    return head, head(_hidden(batch, 3.0))


def test_student_t_outputs_valid_parameters():
    head, output = _student_t_output()
    assert StudentTHead.probabilistic and head.n_outputs == 3
    assert head.quantiles == DEFAULT_QUANTILES
    assert output.shape == (16, 4, 3)
    loc, scale, df = output.unbind(-1)
    assert (scale > 0).all() and (df > 2).all()


def test_student_t_loss_is_the_mean_negative_log_likelihood():
    head, output = _student_t_output()
    target = torch.randn(16, 4) * 2
    loc, scale, df = (t.detach().double().numpy() for t in output.unbind(-1))
    expected = -stats.t.logpdf(target.double().numpy(), df, loc, scale).mean()
    loss = head.loss(output, target)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    # by hand for one value: t_3 density at 0, location 0, scale 2
    one = torch.tensor([[[0.0, 2.0, 3.0]]])
    density = 2 / (np.pi * np.sqrt(3) * 2)  # Gamma(2)/(sqrt(3 pi) Gamma(1.5)) / 2
    assert float(head.loss(one, torch.zeros(1, 1))) == pytest.approx(
        -np.log(density), rel=1e-6
    )
    loss.backward()
    assert all(p.grad is not None for p in head.parameters())


def test_student_t_quantiles_match_scipy_and_never_cross():
    head, output = _student_t_output()
    quantiles = head.to_quantiles(output)
    assert quantiles.shape == (16, 4, len(DEFAULT_QUANTILES))
    assert quantiles.dtype == torch.float32
    assert (quantiles.diff(dim=-1) > 0).all()
    loc, scale, df = (t.detach().double().numpy() for t in output.unbind(-1))
    expected = stats.t.ppf(
        np.array(DEFAULT_QUANTILES), df[..., None], loc[..., None], scale[..., None]
    )
    np.testing.assert_allclose(
        quantiles.detach().numpy(), expected, rtol=1e-5, atol=1e-6
    )
    median = quantiles[..., DEFAULT_QUANTILES.index(0.5)]
    torch.testing.assert_close(median, output[..., 0])


def test_student_t_shift_moves_the_location_only():
    head, output = _student_t_output()
    offset = torch.randn(16, 4)
    shifted = head.shift(output, offset)
    torch.testing.assert_close(shifted[..., 0], output[..., 0] + offset)
    assert torch.equal(shifted[..., 1:], output[..., 1:])
    torch.testing.assert_close(
        head.to_quantiles(shifted), head.to_quantiles(output) + offset[..., None]
    )


def test_untrained_student_t_starts_with_a_sensible_spread():
    head = StudentTHead(**SHAPE, quantiles=[0.1, 0.5, 0.9])
    torch.nn.init.zeros_(head.projection.weight)
    loc, scale, df = head(_hidden(1))[0, 0].detach()
    assert float(loc) == 0.0
    assert float(scale) == pytest.approx(1.0, abs=1e-3)
    assert float(df) == pytest.approx(5.0, abs=1e-5)


# ----------------------------------------------------------- in the forecaster
FITS = {
    "mlp": dict(backbone="none", head_kwargs={"hidden_sizes": [16]}),
    "lstm": dict(backbone="lstm", head_kwargs={"rnn_size": 8}),
    "gru": dict(backbone="gru", head_kwargs={"rnn_size": 8}),
    "student_t": dict(backbone="none"),
}


def _fit(y, head, **params):
    settings = dict(
        strategy="full",
        backbone_kwargs={"hidden_size": 8} if params["backbone"] != "none" else {},
        context_length=16,
        patch_length=4,
        max_epochs=2,
        random_state=0,
        verbose=0,
        device="cpu",
    )
    return FineTunedPriceForecaster(head=head, **{**settings, **params}).fit(
        y, fh=[1, 2, 3]
    )


@pytest.mark.parametrize("head", sorted(FITS))
def test_each_head_fits_predicts_and_gives_intervals(brent_monthly, head):
    y = brent_monthly.iloc[-150:]
    forecaster = _fit(y, head, **FITS[head])
    assert forecaster.get_tag("capability:pred_int")
    prediction = forecaster.predict()
    assert len(prediction) == 3 and np.isfinite(prediction.to_numpy()).all()
    assert prediction.abs().max() < 10 * y.abs().max()
    interval = forecaster.predict_interval(coverage=[0.5, 0.9])
    lower = interval.xs("lower", axis=1, level=-1).to_numpy()
    upper = interval.xs("upper", axis=1, level=-1).to_numpy()
    assert (lower < upper).all()
    # the 90% interval contains the 50% one, which contains the median
    assert (lower[:, 1] <= lower[:, 0]).all() and (upper[:, 0] <= upper[:, 1]).all()
    assert ((lower[:, 0] <= prediction) & (prediction <= upper[:, 0])).all()


def test_point_versions_predict_but_give_no_intervals(brent_monthly):
    forecaster = _fit(
        brent_monthly.iloc[-150:],
        "lstm",
        backbone="lstm",
        head_kwargs={"rnn_size": 8, "quantiles": None, "loss": "huber"},
    )
    assert forecaster.quantiles_ is None
    assert np.isfinite(forecaster.predict().to_numpy()).all()
    # sktime is told up front: no interval capability, so it refuses
    assert forecaster.get_tag("capability:pred_int") is False
    with pytest.raises(NotImplementedError):
        forecaster.predict_quantiles(alpha=[0.1])


def test_point_head_has_no_quantiles(brent_monthly):
    forecaster = FineTunedPriceForecaster(
        backbone="none",
        head="linear",
        strategy="full",
        context_length=16,
        max_epochs=1,
        random_state=0,
        verbose=0,
    ).fit(brent_monthly, fh=[1])
    assert forecaster.quantiles_ is None
    with pytest.raises(NotImplementedError):
        forecaster.predict_quantiles(alpha=[0.5])


def test_student_t_with_covariates_shifts_the_location(brent_monthly):
    y = brent_monthly.iloc[-150:]
    X = pd.DataFrame({"flag": (np.arange(len(y)) % 3 == 0) * 1.0}, index=y.index)
    forecaster = FineTunedPriceForecaster(
        backbone="none",
        head="student_t",
        strategy="full",
        context_length=16,
        patch_length=4,
        max_epochs=2,
        random_state=0,
        verbose=0,
    ).fit(y.iloc[:-3], X=X.iloc[:-3], fh=[1, 2, 3])
    interval = forecaster.predict_interval(X=X.iloc[-3:], coverage=0.8)
    assert np.isfinite(interval.to_numpy()).all()


@pytest.mark.parametrize("head", ["student_t", "mlp"])
def test_saved_and_loaded_heads_predict_the_same(brent_monthly, tmp_path, head):
    forecaster = _fit(brent_monthly.iloc[-150:], head, **FITS[head])
    path = forecaster.save(tmp_path / head, serialization_format="safetensors")
    loaded = FineTunedPriceForecaster.load(path)
    assert loaded.predict().equals(forecaster.predict())
    assert loaded.predict_interval(coverage=0.8).equals(
        forecaster.predict_interval(coverage=0.8)
    )


def test_the_interval_tag_follows_the_head_options():
    from pricetune import FineTunedPriceForecaster

    for head, kwargs, expected in [
        ("mlp", None, True),
        ("mlp", {"quantiles": None}, False),
        ("gru", {"quantiles": None}, False),
        ("lstm", {"quantiles": [0.1, 0.5, 0.9]}, True),
        ("linear", None, False),
        ("student_t", None, True),
    ]:
        forecaster = FineTunedPriceForecaster(head=head, head_kwargs=kwargs)
        assert forecaster.get_tag("capability:pred_int") is expected, (head, kwargs)
        # set_params re-reads the options
        forecaster.set_params(head_kwargs={"quantiles": None})
        assert forecaster.get_tag("capability:pred_int") is (head == "student_t"), head
