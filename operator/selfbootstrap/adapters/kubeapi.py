"""Raw JSON requests to the API server through the official client's transport and authentication.

The client's typed API classes (AppsV1Api, CoreV1Api, ...) import several hundred pydantic models
the first time one is made: about 28 MiB of the operator's memory, for models it never uses (it
reads and writes raw JSON). So the requests are built here from resource paths, and the client
only lends what it does well: kubeconfig and in-cluster login, token refresh, TLS, connection pools.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import cast
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ..core.jsontypes import JsonObject, JsonValue, objects

JSON = "application/json"


def resource_path(group: str, version: str, plural: str, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """The REST path of a collection or an object; names are quoted, so no name can walk the path."""
    parts = [f"/api/{version}" if not group else f"/apis/{quote(group, safe='')}/{quote(version, safe='')}"]
    if namespace is not None:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(quote(plural, safe=""))
    if name is not None:
        parts.append(quote(name, safe=""))
    if subresource is not None:
        parts.append(quote(subresource, safe=""))
    return "/".join(parts)


def api_client(configuration: client.Configuration, user_agent: str) -> client.ApiClient:
    """The official client, naming this program in User-Agent: the API server's audit log and request metrics
    then say who asked (the client's default names its code generator)."""
    api = client.ApiClient(configuration)
    api.user_agent = user_agent
    return api


class KubeApi:
    """GET/LIST/POST/PATCH/DELETE of raw JSON; a refused request raises the client's ApiException."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                body: JsonValue | None = None, content_type: str = JSON) -> JsonObject:
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, payload, _ = self.api_client.param_serialize(
            method, path, query_params=list((query or {}).items()), header_params=headers, body=body,
            auth_settings=["BearerToken"])
        response = self.api_client.call_api(method, url, headers, payload)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return cast(JsonObject, json.loads(data))

    def stream(self, path: str, query: Mapping[str, str], read_timeout: float) -> Iterator[bytes]:
        """A GET whose body is read as it arrives (a watch), in chunks; a refused request raises ApiException."""
        method, url, headers, _, _ = self.api_client.param_serialize(
            "GET", path, query_params=list(query.items()), header_params={"Accept": JSON},
            auth_settings=["BearerToken"])
        response = self.api_client.call_api(method, url, headers, None, _request_timeout=(10, read_timeout))
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException(http_resp=response)
        try:
            yield from response.response.stream(65536, decode_content=True)
        finally:
            response.response.release_conn()

    def get(self, path: str, query: Mapping[str, str] | None = None) -> JsonObject:
        return self.request("GET", path, query=query)

    def list(self, path: str, label_selector: str | None = None) -> list[JsonObject]:
        """The items of a collection, optionally only those matching a label selector."""
        query = {"labelSelector": label_selector} if label_selector else None
        return objects(self.get(path, query).get("items"))

    def get_optional(self, path: str) -> JsonObject | None:
        """The object, or None when there is none (404)."""
        try:
            return self.get(path)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create(self, path: str, body: JsonObject, query: Mapping[str, str] | None = None) -> JsonObject:
        return self.request("POST", path, query=query, body=body)

    def create_if_absent(self, path: str, body: JsonObject, query: Mapping[str, str] | None = None) -> bool:
        """Create the object; False when one of that name exists already (409)."""
        try:
            self.create(path, body, query)
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        return True

    def patch(self, path: str, body: JsonValue, content_type: str,
              query: Mapping[str, str] | None = None) -> JsonObject:
        return self.request("PATCH", path, query=query, body=body, content_type=content_type)

    def delete(self, path: str, query: Mapping[str, str] | None = None, body: JsonObject | None = None) -> JsonObject:
        return self.request("DELETE", path, query=query, body=body)
