"""What a setting's value must be, stated once, below the ``Config`` that reads the values and the models and
trainers that use them.

* :mod:`~recbole_crs.settings.rule`: the rule language (:class:`~recbole_crs.settings.rule.Rule`: one key's check
  and its one-line error);
* :mod:`~recbole_crs.settings.key_rules`: each key's rule, and :func:`~recbole_crs.settings.key_rules.check_keys`
  for models and trainers built without :func:`recbole_crs.validation.validate`;
* :mod:`~recbole_crs.settings.launch`: the multi-process options and the keys the launcher gives each process.
"""
