"""The embeddings seam: the offline MiniLM model (determinism, checksums) and OpenAI against a local fake."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from embeddings import EmbeddingError, EmbeddingModelMismatchError, ModelChecksumError, build_provider, check_compatible
from embeddings.local import TOKENIZER_PATH, LocalMiniLMProvider, default_model_path
from embeddings.openai import OpenAIEmbeddingProvider

from tests.fakes.openai_embeddings import fake_vector, serve_openai


@pytest.fixture(scope="module")
def local() -> LocalMiniLMProvider:
    provider = build_provider("local")
    assert isinstance(provider, LocalMiniLMProvider)
    return provider


def test_local_model_is_deterministic_normalised_and_batch_independent(local: LocalMiniLMProvider) -> None:
    texts = ["How do I create an index?", "CREATE INDEX builds an index on a column.", "The cat sat on the mat."]
    first = np.array(local.embed(texts))
    again = np.array(local.embed(list(reversed(texts))))[::-1]
    alone = np.array(local.embed([texts[1]]))
    assert first.shape == (3, 384) and local.dimensions == 384 and local.model == "all-MiniLM-L6-v2"
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.allclose(first, again, atol=1e-5) and np.allclose(first[1], alone[0], atol=1e-5)
    similarity = first @ first.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3  # a question is nearer its answer than an unrelated line


def test_a_single_text_runs_on_one_thread_and_batches_on_all() -> None:
    # A search embeds its query while the database works on the other core: one model thread, not two.
    provider = LocalMiniLMProvider(threads=2)
    batch = provider.embed(["CREATE INDEX builds an index on a column.", "The cat sat on the mat."])
    alone = provider.embed(["CREATE INDEX builds an index on a column."])
    assert provider._query_session is not provider._session
    assert provider._session.get_session_options().intra_op_num_threads == 2
    assert provider._query_session.get_session_options().intra_op_num_threads == 1
    assert np.allclose(batch[0], alone[0], atol=1e-5)


def test_a_corrupt_model_file_is_refused_at_load(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.onnx"
    shutil.copyfile(default_model_path(), corrupt)
    with corrupt.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ModelChecksumError, match="reinstall"):
        LocalMiniLMProvider(model_path=corrupt)
    with pytest.raises(ModelChecksumError, match="missing"):
        LocalMiniLMProvider(tokenizer_path=tmp_path / "nope.json")
    assert TOKENIZER_PATH.is_file()


def test_mixing_models_is_refused_with_what_to_do(local: LocalMiniLMProvider) -> None:
    check_compatible(local, "all-MiniLM-L6-v2", 384, "docs source 'x'")
    with pytest.raises(EmbeddingModelMismatchError, match=r"text-embedding-3-small.*--rebuild"):
        check_compatible(local, "text-embedding-3-small", 1536, "docs source 'x'")


def test_openai_provider_batches_sorts_by_index_and_retries_429() -> None:
    sleeps: list[float] = []
    with serve_openai() as fake:
        fake.queued = [(429, {"Retry-After": "2"})]
        provider = OpenAIEmbeddingProvider("sk-test", fake.url, batch_size=2, sleep=sleeps.append)
        vectors = provider.embed(["a", "b", "c"])
        provider.close()
    assert vectors == [fake_vector("a"), fake_vector("b"), fake_vector("c")]
    assert [len(r["body"]["input"]) for r in fake.requests] == [2, 2, 1]  # the 429'd batch was resent
    assert sleeps == [2.0]


def test_openai_provider_errors_name_the_fix() -> None:
    with serve_openai() as fake:
        provider = OpenAIEmbeddingProvider("sk-wrong", fake.url)
        with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
            provider.embed(["x"])
        provider.close()
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
        build_provider("openai", openai_api_key=None)
    with pytest.raises(EmbeddingError, match="unknown EMBEDDING_PROVIDER"):
        build_provider("bert")


def test_max_tokens_cuts_long_texts_only_and_is_validated(local: LocalMiniLMProvider) -> None:
    short = LocalMiniLMProvider(max_tokens=16)
    head = "VACUUM reclaims storage occupied by dead tuples"
    long_text = head + " and then goes on about completely unrelated matters such as cats, weather and trains" * 5
    longer = long_text + " with even more words at the very end that sixteen pieces never reach"
    cut_a, cut_b, whole = short.embed([long_text, longer]), short.embed([longer])[0], local.embed([long_text])[0]
    assert np.allclose(cut_a[0], cut_a[1], atol=1e-5) and np.allclose(cut_a[1], cut_b, atol=1e-5)
    assert float(np.dot(cut_a[0], whole)) < 0.99  # the default reads the whole text
    assert np.allclose(short.embed([head])[0], local.embed([head])[0], atol=1e-5)  # a short text is unchanged
    assert short.max_tokens == 16 and local.max_tokens == 128
    for bad in (4, 513):
        with pytest.raises(EmbeddingError, match="max_tokens"):
            LocalMiniLMProvider(max_tokens=bad)
    assert build_provider("local", max_tokens=16) is build_provider("local", max_tokens=16)
    assert build_provider("local", max_tokens=16) is not build_provider("local")


def test_mixed_lengths_come_back_in_input_order(local: LocalMiniLMProvider) -> None:
    texts = ["word " * n for n in (300, 1, 40, 7, 120, 2, 0)]
    together = local.embed(texts)
    one_by_one = [local.embed([t])[0] for t in texts]
    assert np.allclose(np.array(together), np.array(one_by_one), atol=1e-5)
