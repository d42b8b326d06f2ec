"""twistd plugins: ``twistd smsgw`` (the gateway) and ``twistd smsgw-smsc``.

twistd discovers plugins only in folders named ``twisted/plugins``. This
folder is on ``sys.path`` in a checkout (``PYTHONPATH=twistd_plugins``; pytest's
``pythonpath``) and is installed as part of ``twisted.plugins`` by the wheel.
There must be no ``__init__.py`` below ``twistd_plugins/``.
"""

from twisted.application.service import ServiceMaker

smsgw = ServiceMaker(
    "smsgw",
    "smsgw.service.tap",
    "SMPP gateway for card-transaction alerts",
    "smsgw",
)
smsgw_smsc = ServiceMaker(
    "smsgw-smsc",
    "smsgw.service.smsc_tap",
    "smsgw's built-in SMSC simulator",
    "smsgw-smsc",
)
