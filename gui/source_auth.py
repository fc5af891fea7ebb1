"""The Sources form's settings beyond the signature header: the signature of payload-only kinds,
public keys (Telnyx, GoHighLevel), the auth method and its fields, the IP allowlist and a generic
sender's field mapping.  Each row is shown only for the kinds and methods it applies to."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLineEdit,
    QPlainTextEdit,
    QWidget,
)

from connector.config import AUTH_METHODS, SIGNATURES, SourceConfig

KIND_LABELS = {
    "hmac": "HMAC-SHA256 (UnlimCall, Dialer.CX, most dialers)",
    "standard": "Standard Webhooks (whsec_ secrets)",
    "twilio": "Twilio status callbacks",
    "cloudevents": "CloudEvents 1.0 (structured, binary, batch)",
    "telnyx": "Telnyx Call Control / TeXML (Ed25519 public key)",
    "retell": "Retell AI (x-retell-signature)",
    "vapi": "Vapi server messages",
    "ghl": "GoHighLevel webhooks (published public keys)",
    "generic": "Any JSON sender, mapped field by field",
}
SIGNATURE_LABELS = {"": "none (auth method only)", "hmac": "HMAC-SHA256 (keys below)",
                    "standard": "Standard Webhooks"}
AUTH_LABELS = {"": "none", "api_key": "API key (header or query parameter)", "basic": "HTTP Basic (user + password)",
               "bearer": "Bearer token (or JWT)"}


def _lines(mapping: dict[str, str]) -> str:
    return "\n".join(f"{key} = {value}" for key, value in mapping.items())


def parse_lines(text: str) -> dict[str, str]:
    """``key = value`` lines (blank lines and ``#`` comments skipped); a line without ``=`` keeps
    its text as a key with an empty value, so the configuration check names it."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            found[key.strip().strip('"')] = value.strip().strip('"')
    return found


class SourceDetails(QWidget):
    """Rows of a :class:`QFormLayout` owned by the Sources form."""

    def __init__(self, form: QFormLayout) -> None:
        super().__init__()
        self.form = form
        self.signature = QComboBox()
        for value, label in SIGNATURE_LABELS.items():
            self.signature.addItem(label, value)
        self.public_key = QLineEdit()
        self.public_key.setPlaceholderText("base64 key from the sender's portal, or a PEM")
        self.legacy_public_key = QLineEdit()
        self.legacy_public_key.setPlaceholderText("empty: GoHighLevel's published RSA key")
        self.auth = QComboBox()
        for value in ("", *AUTH_METHODS):
            self.auth.addItem(AUTH_LABELS[value], value)
        self.api_key_header = QLineEdit()
        self.api_key_param = QLineEdit()
        self.api_key_param.setPlaceholderText("optional: the key as ?name=... in the URL")
        self.basic_user = QLineEdit()
        self.jwt = QCheckBox("The bearer token is a JWT")
        self.jwt_public_key = QLineEdit()
        self.jwt_public_key.setPlaceholderText("empty: HS256 with the secret; else a PEM (RS256/ES256/EdDSA)")
        self.jwt_audience = QLineEdit()
        self.jwt_issuer = QLineEdit()
        self.auth_secret = QLineEdit()
        self.auth_secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.auth_secret.setPlaceholderText("API key, password or token: kept in the OS keyring")
        self.ip_allowlist = QLineEdit()
        self.ip_allowlist.setPlaceholderText("optional: 203.0.113.0/24, 2001:db8::/32")
        self.fields = QPlainTextEdit()
        self.fields.setPlaceholderText("call_id = call.ref\nevent = evt.kind\nstatus = call.result")
        self.fields.setFixedHeight(110)
        self.status_map = QPlainTextEdit()
        self.status_map.setPlaceholderText("no-answer = no_answer\nwon = sale")
        self.status_map.setFixedHeight(70)
        self.rows: list[tuple[str, QWidget]] = [
            ("Signature", self.signature), ("Public key", self.public_key),
            ("Legacy public key", self.legacy_public_key), ("Auth method", self.auth),
            ("API key header", self.api_key_header), ("API key parameter", self.api_key_param),
            ("User", self.basic_user), ("", self.jwt), ("JWT public key", self.jwt_public_key),
            ("JWT audience", self.jwt_audience), ("JWT issuer", self.jwt_issuer),
            ("Auth credential", self.auth_secret), ("IP allowlist", self.ip_allowlist),
            ("Field mapping", self.fields), ("Status map", self.status_map),
        ]
        for label, widget in self.rows:
            form.addRow(label, widget)
        for combo in (self.signature, self.auth):
            combo.currentIndexChanged.connect(lambda *_: self.refresh())
        self.jwt.toggled.connect(lambda *_: self.refresh())
        self.jwt_public_key.textChanged.connect(lambda *_: self.refresh())
        self._kind = "hmac"

    # -- values ------------------------------------------------------------------
    def load(self, src: SourceConfig) -> None:
        self._kind = src.kind
        self.signature.setCurrentIndex(max(0, self.signature.findData(src.signature)))
        self.public_key.setText(src.public_key)
        self.legacy_public_key.setText(src.legacy_public_key)
        self.auth.setCurrentIndex(max(0, self.auth.findData(src.auth)))
        self.api_key_header.setText(src.api_key_header)
        self.api_key_param.setText(src.api_key_param)
        self.basic_user.setText(src.basic_user)
        self.jwt.setChecked(src.jwt)
        self.jwt_public_key.setText(src.jwt_public_key)
        self.jwt_audience.setText(src.jwt_audience)
        self.jwt_issuer.setText(src.jwt_issuer)
        self.auth_secret.clear()
        self.ip_allowlist.setText(", ".join(src.ip_allowlist))
        self.fields.setPlainText(_lines(src.fields))
        self.status_map.setPlainText(_lines(src.status_map))
        self.refresh()

    def apply(self, src: SourceConfig) -> SourceConfig:
        """``src`` with this part of the form's values (hidden rows reset to their defaults)."""
        kind = src.kind
        d = SourceConfig(src.name)
        auth = self.auth.currentData() or ""
        jwt = auth == "bearer" and self.jwt.isChecked()
        return replace(
            src,
            signature=(self.signature.currentData() or "") if kind in SIGNATURES else "",
            public_key=self.public_key.text().strip() if kind in ("telnyx", "ghl") else "",
            legacy_public_key=self.legacy_public_key.text().strip() if kind == "ghl" else "",
            auth=auth,
            api_key_header=(self.api_key_header.text().strip() if auth == "api_key" else d.api_key_header),
            api_key_param=self.api_key_param.text().strip() if auth == "api_key" else "",
            basic_user=self.basic_user.text().strip() if auth == "basic" else "",
            jwt=jwt,
            jwt_public_key=self.jwt_public_key.text().strip() if jwt else "",
            jwt_audience=self.jwt_audience.text().strip() if jwt else "",
            jwt_issuer=self.jwt_issuer.text().strip() if jwt else "",
            ip_allowlist=[p.strip() for p in self.ip_allowlist.text().replace(";", ",").split(",") if p.strip()],
            fields=parse_lines(self.fields.toPlainText()) if kind == "generic" else {},
            status_map=parse_lines(self.status_map.toPlainText()) if kind == "generic" else {},
        )

    def auth_credential(self) -> str | None:
        return self.auth_secret.text().strip() or None

    # -- which rows show -----------------------------------------------------------
    def set_kind(self, kind: str) -> None:
        self._kind = kind
        self.refresh()

    def signature_is_hmac(self) -> bool:
        return self._kind == "hmac" or (self._kind in SIGNATURES and self.signature.currentData() == "hmac")

    def needs_separate_auth_secret(self) -> bool:
        """A signature kind and an auth method with a secret: the credential is ``source:<name>:auth``."""
        src = self.apply(SourceConfig("form", kind=self._kind))
        return src.auth_needs_secret and src.signature_scheme is not None

    def needs_source_secret(self) -> bool:
        """Whether ``source:<name>`` holds anything: a signing secret, or the only auth credential."""
        src = self.apply(SourceConfig("form", kind=self._kind))
        return src.signature_needs_secret or (src.auth_needs_secret and src.signature_scheme is None)

    def refresh(self) -> None:
        kind = self._kind
        auth = self.auth.currentData() or ""
        jwt = auth == "bearer" and self.jwt.isChecked()
        shown = {
            self.signature: kind in SIGNATURES,
            self.public_key: kind in ("telnyx", "ghl"),
            self.legacy_public_key: kind == "ghl",
            self.api_key_header: auth == "api_key",
            self.api_key_param: auth == "api_key",
            self.basic_user: auth == "basic",
            self.jwt: auth == "bearer",
            self.jwt_public_key: jwt,
            self.jwt_audience: jwt,
            self.jwt_issuer: jwt,
            self.auth_secret: self.needs_separate_auth_secret(),
            self.fields: kind == "generic",
            self.status_map: kind == "generic",
        }
        for widget, visible in shown.items():
            self.form.setRowVisible(widget, visible)
        self.public_key.setPlaceholderText(
            "empty: GoHighLevel's published Ed25519 key" if kind == "ghl"
            else "base64 key from the Telnyx portal, or a PEM")
