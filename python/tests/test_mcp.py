"""`bitseek mcp` driven by a real MCP client: the official Python SDK (`mcp` on PyPI) launches the
server over stdio, negotiates the protocol both ways it can (its default `auto`: discover the
server's version, falling back to the initialize handshake; and `legacy`: the handshake alone),
lists the tools, builds the index with the `index` tool and searches with the real model."""

import os
import pathlib

import anyio
import pytest

if os.environ.get("BITSEEK_REQUIRE_MCP") == "1":
    import mcp
else:
    mcp = pytest.importorskip("mcp", reason="the MCP Python SDK is not installed (pip install mcp)")

REPO = pathlib.Path(__file__).resolve().parents[2]


def server(repo):
    binary = os.environ.get("BITSEEK_BIN", str(REPO / "target" / "release" / "bitseek"))
    # The SDK passes the server only a safe subset of the environment: hand on the model's.
    env = {k: v for k, v in os.environ.items() if k.startswith("BITSEEK_")}
    return mcp.StdioServerParameters(command=binary, args=["mcp", "--dir", str(repo)], env=env)


def text_of(result):
    return result.content[0].text


async def session(repo, mode):
    """Runs the checks; returns why they were skipped (no model and none required), else None."""
    async with mcp.Client(server(repo), mode=mode, read_timeout_seconds=120) as client:
        assert client.server_info is None or client.server_info.name == "bitseek"
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"search", "index"}
        props = tools["search"].input_schema["properties"]
        assert {"question", "k", "lang", "path", "context"} <= set(props)

        missing = await client.call_tool("search", {"question": "checksum"})
        assert missing.is_error and "no index in" in text_of(missing), text_of(missing)

        built = await client.call_tool("index", {})
        if built.is_error:
            msg = text_of(built)
            if "model" in msg and os.environ.get("BITSEEK_REQUIRE_MODEL") != "1":
                return f"no embedding model installed (bitseek model fetch): {msg}"
            raise AssertionError(msg)
        assert built.structured_content["files_embedded"] == 3, built.structured_content

        found = await client.call_tool(
            "search", {"question": "where is the checksum verified", "k": 3, "context": 1}
        )
        assert not found.is_error, text_of(found)
        hits = found.structured_content["hits"]
        top = hits[0]
        assert top["path"] == "store/checksum.py", hits
        assert top["signature"].startswith("def verify_checksum")
        lines = (repo / "store/checksum.py").read_text().splitlines()
        assert top["code"] == "\n".join(lines[top["line"] - 1 : top["end_line"]])
        assert top["context_before"] == lines[top["line"] - 2 : top["line"] - 1]
        assert isinstance(top["score"], float)

        rust = await client.call_tool("search", {"question": "sorting", "lang": "rust", "k": 5})
        assert [h["path"] for h in rust.structured_content["hits"]] == ["src/sort.rs"]

        bad = await client.call_tool("search", {"question": "x", "lang": "cobol"})
        assert bad.is_error and "unknown language" in text_of(bad)

        again = await client.call_tool("index", {})
        assert again.structured_content["files_embedded"] == 0
        assert again.structured_content["files_reused"] == 3
    return None


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_mcp_sdk_client_indexes_and_searches(repo, mode):
    skip = anyio.run(session, repo, mode)  # (pytest.skip inside the client's task group is lost)
    if skip:
        pytest.skip(skip)
