"""The project's real AWS credential and the re-signing forwarder.

The project's credential (access key pair, optional role to assume per agent, optional
endpoint and account) is stored sealed as provider ``aws``. Allowed calls are re-signed
with botocore's SigV4 signer under that credential (or the agent's assumed-role session:
RoleSessionName and SourceIdentity are the agent's name, so CloudTrail names it too) and
relayed with bodies streamed both ways.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import botocore.session
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from tether.errors import TetherError
from tether.gateway.aws.tags import TagLookup
from tether.identity.upstream_keys import UpstreamKeys

__all__ = [
    "AWS_PROVIDER",
    "AwsProjectConfig",
    "AwsUpstream",
    "PresetPayloadS3Auth",
    "sign_upstream",
]

AWS_PROVIDER = "aws"
DEFAULT_REGION = "us-east-1"
_GLOBAL = {"iam": "https://iam.amazonaws.com", "sts": "https://sts.amazonaws.com"}
_BOTOCORE_NAME = {"monitoring": "cloudwatch"}
_ASSUMED_SECONDS = 3600
_REFRESH_BEFORE_SECONDS = 300


class AwsNotConfigured(TetherError):
    code = "aws_not_configured"


class AwsUnavailable(TetherError):
    """AWS (STS) could not answer what the broker needs before forwarding."""

    code = "aws_unavailable"


@dataclass(frozen=True, slots=True)
class AwsProjectConfig:
    """What ``tether aws set-credentials`` stored (the secret never leaves tether)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    role_arn: str | None = None
    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    account_id: str | None = None

    def dumps(self) -> str:
        return json.dumps(
            {
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key,
                "role_arn": self.role_arn,
                "endpoint_url": self.endpoint_url,
                "region": self.region,
                "account_id": self.account_id,
            }
        )

    @classmethod
    def loads(cls, text: str) -> AwsProjectConfig:
        data = json.loads(text)
        return cls(
            access_key_id=data["access_key_id"],
            secret_access_key=data["secret_access_key"],
            role_arn=data.get("role_arn"),
            endpoint_url=data.get("endpoint_url"),
            region=data.get("region") or DEFAULT_REGION,
            account_id=data.get("account_id"),
        )

    def endpoint(self, service: str, region: str) -> str:
        if self.endpoint_url:
            return self.endpoint_url.rstrip("/")
        if service in _GLOBAL:
            return _GLOBAL[service]
        return f"https://{service}.{region}.amazonaws.com"


class PresetPayloadS3Auth(S3SigV4Auth):  # type: ignore[misc]
    """botocore's S3 signer, told the payload hash instead of hashing a streamed body."""

    def __init__(self, credentials: Credentials, service: str, region: str, payload: str) -> None:
        super().__init__(credentials, service, region)
        self._payload = payload

    def payload(self, request: AWSRequest) -> str:
        return self._payload


def sign_upstream(
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    credentials: Credentials,
    service: str,
    region: str,
    payload: str | None,
    body: bytes | None,
) -> tuple[dict[str, str], str]:
    """The headers to send (signed) and the seed signature. ``payload``: S3's
    ``x-amz-content-sha256``; other services sign the (small) body's hash."""
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in headers:
        request.headers[name] = value
    auth: SigV4Auth
    if service == "s3":
        auth = PresetPayloadS3Auth(credentials, service, region, payload or "UNSIGNED-PAYLOAD")
    else:
        auth = SigV4Auth(credentials, service, region)
    auth.add_auth(request)
    signature = request.headers["Authorization"].rsplit("Signature=", 1)[-1]
    return {k: v for k, v in request.headers.items()}, signature


class AwsUpstream:
    def __init__(self, keys: UpstreamKeys, connect_timeout: float, read_timeout: float) -> None:
        self._keys = keys
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._assumed: dict[tuple[str, str], tuple[float, Credentials]] = {}
        self._accounts: dict[str, str] = {}
        self._clients: dict[tuple[str, str, str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self._configs: dict[str, tuple[str, AwsProjectConfig, Credentials]] = {}
        """Per project: the sealed text last read, what it parses to and its credential
        (a model call's hot path reads them on every call)."""
        self.tags = TagLookup()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def config(self, project_id: str, project_name: str) -> AwsProjectConfig:
        sealed = await self._keys.get(project_id, AWS_PROVIDER)
        if not sealed:
            raise AwsNotConfigured(
                f"project {project_name!r} has no AWS credentials: "
                f"run `tether aws set-credentials {project_name}`"
            )
        cached = self._configs.get(project_id)
        if cached is not None and cached[0] == sealed:
            return cached[1]
        config = AwsProjectConfig.loads(sealed)
        own = Credentials(config.access_key_id, config.secret_access_key)
        self._configs[project_id] = (sealed, config, own)
        return config

    def client(
        self, project_id: str, config: AwsProjectConfig, service: str, region: str | None = None
    ) -> Any:
        """A botocore client under tether's own (not assumed) credential, in ``region``
        (the project's if None). Building one reads the service's model (tens of
        milliseconds), so callers run this off the event loop; the lock makes concurrent
        first calls share one client."""
        name = _BOTOCORE_NAME.get(service, service)
        region = region or config.region
        key = (project_id, config.access_key_id, name, region)
        with self._clients_lock:
            if key not in self._clients:
                session = botocore.session.get_session()
                self._clients[key] = session.create_client(
                    name,
                    region_name=region,
                    endpoint_url=config.endpoint_url,
                    aws_access_key_id=config.access_key_id,
                    aws_secret_access_key=config.secret_access_key,
                    config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=15),
                )
            return self._clients[key]

    def client_factory(
        self, project_id: str, config: AwsProjectConfig, region: str
    ) -> Callable[[str], Any]:
        """Clients in the region a call was signed for: a resource's tags are read where
        the resource is (an instance in another region reads as untagged elsewhere)."""
        return lambda service: self.client(project_id, config, service, region)

    async def account(self, project_id: str, config: AwsProjectConfig) -> str:
        """The account id ARNs are built with: configured, else asked of STS once."""
        if config.account_id:
            return config.account_id
        if project_id not in self._accounts:
            try:
                answer = await asyncio.to_thread(
                    lambda: self.client(project_id, config, "sts").get_caller_identity()
                )
            except (BotoCoreError, ClientError) as exc:
                raise AwsUnavailable(f"the AWS account id could not be read: {exc}") from None
            self._accounts[project_id] = str(answer["Account"])
        return self._accounts[project_id]

    async def credentials(
        self, project_id: str, config: AwsProjectConfig, agent_name: str
    ) -> Credentials:
        """The project's credential, or the agent's own assumed-role session."""
        if not config.role_arn:
            parsed = self._configs.get(project_id)
            if parsed is not None and parsed[1] is config:
                return parsed[2]
            return Credentials(config.access_key_id, config.secret_access_key)
        key = (project_id, agent_name)
        cached = self._assumed.get(key)
        if cached is not None and cached[0] - time.time() > _REFRESH_BEFORE_SECONDS:
            return cached[1]
        try:
            answer = await asyncio.to_thread(
                lambda: self.client(project_id, config, "sts").assume_role(
                    RoleArn=config.role_arn,
                    RoleSessionName=agent_name[:64],
                    SourceIdentity=agent_name[:64],
                    DurationSeconds=_ASSUMED_SECONDS,
                )
            )
        except (BotoCoreError, ClientError) as exc:
            raise AwsUnavailable(f"role {config.role_arn} could not be assumed: {exc}") from None
        issued = answer["Credentials"]
        credentials = Credentials(
            issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]
        )
        self._assumed[key] = (issued["Expiration"].timestamp(), credentials)
        return credentials

    def forget(self, project_id: str) -> None:
        """The project's credential changed: drop what was derived from it."""
        self._accounts.pop(project_id, None)
        self._configs.pop(project_id, None)
        for key in [k for k in self._assumed if k[0] == project_id]:
            del self._assumed[key]
        with self._clients_lock:
            for client_key in [k for k in self._clients if k[0] == project_id]:
                del self._clients[client_key]
        self.tags.forget(project_id)

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | AsyncIterable[bytes] | None,
    ) -> aiohttp.ClientResponse:
        """The upstream response, headers read and body not yet (the caller releases it)."""
        assert self._session is not None, "AwsUpstream.start() first"
        return await self._session.request(
            method, url, headers=headers, data=body, allow_redirects=False, compress=None
        )

    async def apply(self, change: Any) -> None:
        """Change feed: a project's credential changed."""
        if getattr(change, "kind", None) == "credential":
            self.forget(change.ref)
