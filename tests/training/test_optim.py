"""Learning-rate schedule and the SGD parameter groups of spec §6."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from vireid_jax.training import optim


def agw_optim_config(**overrides):
  config = ml_collections.ConfigDict(dict(
      base_lr=0.1, backbone_lr_scale=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
      warmup_epochs=10, milestones=(20, 50), decay=0.1))
  config.update(overrides)
  return config


def test_epoch_learning_rate_is_the_reference_table():
  expected = {0: 0.01, 1: 0.02, 4: 0.05, 9: 0.1, 10: 0.1, 19: 0.1, 20: 0.01, 49: 0.01,
              50: 0.001, 80: 0.001}
  for epoch, lr in expected.items():
    got = optim.epoch_learning_rate(epoch, base_lr=0.1, warmup_epochs=10, milestones=(20, 50),
                                    decay=0.1)
    np.testing.assert_allclose(float(got), lr, rtol=1e-6, err_msg=f"epoch {epoch}")


def test_schedule_holds_for_whole_epochs():
  schedule = optim.step_schedule(agw_optim_config(), steps_per_epoch=696)
  np.testing.assert_allclose(schedule(0), 0.01)
  np.testing.assert_allclose(schedule(695), 0.01)
  np.testing.assert_allclose(schedule(696), 0.02)


def test_two_groups_match_pytorch_sgd_by_hand():
  """Two steps of PyTorch SGD (wd, Nesterov) worked out by hand for one scalar per group."""
  params = {"classifier": {"kernel": jnp.array(2.0)}, "layer1": {"kernel": jnp.array(-1.0)}}
  groups = (optim.ParamGroup("head", r"^classifier\.", 1.0),
            optim.ParamGroup("backbone", None, 0.1))
  tx = optim.build(agw_optim_config(), steps_per_epoch=1, groups=groups)
  state = tx.init(params)
  grads = {"classifier": {"kernel": jnp.array(0.5)}, "layer1": {"kernel": jnp.array(0.25)}}

  def torch_sgd(p, g, lrs, wd=5e-4, mu=0.9):
    buf = 0.0
    for step, lr in enumerate(lrs):
      d = g + wd * p
      buf = d if step == 0 else mu * buf + d
      p = p - lr * (d + mu * buf)
    return p

  for _ in range(2):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  # Epoch 0 then epoch 1 of warm-up: head 0.01, 0.02; backbone a tenth of that.
  np.testing.assert_allclose(params["classifier"]["kernel"],
                             torch_sgd(2.0, 0.5, [0.01, 0.02]), rtol=1e-6)
  np.testing.assert_allclose(params["layer1"]["kernel"],
                             torch_sgd(-1.0, 0.25, [0.001, 0.002]), rtol=1e-6)


def test_groups_take_parameters_by_pattern_or_predicate_first_match_first():
  params = {"neck": {"scale": jnp.ones(2)}, "stem": {"conv": {"kernel": jnp.ones(3)}},
            "head": [jnp.ones(1), jnp.ones(1)]}
  groups = (optim.ParamGroup("neck", r"^neck\."),
            optim.ParamGroup("second_head", lambda path: path == "head.1"),
            optim.ParamGroup("rest", None))
  labels = optim.group_labels(groups)(params)
  assert labels == {"neck": {"scale": "neck"}, "stem": {"conv": {"kernel": "rest"}},
                    "head": ["rest", "second_head"]}


def test_a_parameter_in_no_group_is_named():
  groups = (optim.ParamGroup("head", r"^classifier\."),)
  with pytest.raises(ValueError, match=r"'stem.kernel' is in no parameter group \(head\)"):
    optim.group_labels(groups)({"classifier": {"kernel": jnp.ones(1)}, "stem": {"kernel": jnp.ones(1)}})
  with pytest.raises(ValueError, match="must differ"):
    optim.grouped(lambda scale: optax.sgd(scale), (optim.ParamGroup("a", None),
                                                   optim.ParamGroup("a", None)))


def test_each_group_runs_at_its_scale_of_the_schedule():
  params = {"a": jnp.zeros(()), "b": jnp.zeros(())}
  tx = optim.build(agw_optim_config(weight_decay=0.0, momentum=0.0, nesterov=False), 1,
                 (optim.ParamGroup("a", "^a$", 1.0), optim.ParamGroup("b", None, 0.25)))
  updates, _ = tx.update({"a": jnp.ones(()), "b": jnp.ones(())}, tx.init(params), params)
  # Epoch 0 of the warm-up: 0.01 for the base group.
  np.testing.assert_allclose([updates["a"], updates["b"]], [-0.01, -0.0025], rtol=1e-6)


def test_adam_is_pytorch_adam_with_coupled_weight_decay():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(0)
  weight, bias = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
  config = ml_collections.ConfigDict(dict(
      name="adam", base_lr=3.5e-4, weight_decay=5e-4, beta1=0.9, beta2=0.999, eps=1e-8,
      warmup_epochs=0, milestones=(80, 120), decay=0.1))
  tx = optim.build(config, steps_per_epoch=5)
  params = {"weight": jnp.asarray(weight), "bias": jnp.asarray(bias)}
  state = tx.init(params)
  torch_weight = torch.nn.Parameter(torch.from_numpy(weight.copy()))
  torch_bias = torch.nn.Parameter(torch.from_numpy(bias.copy()))
  torch_adam = torch.optim.Adam([torch_weight, torch_bias], lr=3.5e-4, betas=(0.9, 0.999),
                                eps=1e-8, weight_decay=5e-4)
  for step in range(4):
    # Gradients of very different sizes: the coupled decay is rescaled with the gradient.
    grads = {"weight": rng.normal(size=(3, 4)).astype(np.float32) * 10.0 ** -step,
             "bias": rng.normal(size=4).astype(np.float32) * 1e-3}
    updates, state = tx.update({k: jnp.asarray(v) for k, v in grads.items()}, state, params)
    params = optax.apply_updates(params, updates)
    torch_weight.grad = torch.from_numpy(grads["weight"])
    torch_bias.grad = torch.from_numpy(grads["bias"])
    torch_adam.step()
    np.testing.assert_allclose(params["weight"], torch_weight.detach().numpy(), rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(params["bias"], torch_bias.detach().numpy(), rtol=1e-6,
                               atol=1e-7)


def test_an_unknown_optimiser_name_names_the_choices():
  with pytest.raises(ValueError, match=r"config.optim.name='lamb'.*adam.*sgd"):
    optim.build(agw_optim_config(name="lamb"), 1)
