// Database rows as the protocol's REST bodies (protocol.ts).
import type { Conversation, Message, ModelVersion, Rating } from '../../db/index.ts';
import type { ConversationSummary, Decoding, ModelVersionInfo, WireMessage } from '../protocol.ts';

export function conversationSummary(c: Conversation): ConversationSummary {
  return { id: c.id, title: c.title, created_at: c.created_at.toISOString(), updated_at: c.updated_at.toISOString() };
}

export function wireMessage(m: Message, ratings: Map<number, Rating>): WireMessage {
  const usage = m.prompt_tokens !== null && m.completion_tokens !== null ? { prompt_tokens: m.prompt_tokens, completion_tokens: m.completion_tokens } : null;
  return {
    id: m.id,
    parent_id: m.parent_id,
    role: m.role,
    content: m.content,
    created_at: m.created_at.toISOString(),
    model_version: m.model_version_id,
    finish_reason: m.finish_reason,
    usage,
    timings: m.timings ? { ttft_ms: m.timings.ttft_ms, total_ms: m.timings.total_ms } : null,
    decoding: (m.decoding as Decoding | null) ?? null,
    rating: ratings.get(m.id)?.value ?? null,
  };
}

export function modelVersionInfo(v: ModelVersion, servingId: number | null): ModelVersionInfo {
  return {
    id: v.id,
    kind: v.kind,
    parent_id: v.parent_id,
    status: v.status,
    sha256: v.sha256,
    checkpoint_path: v.checkpoint_path,
    metrics: v.metrics,
    reasons: v.reasons,
    created_at: v.created_at.toISOString(),
    activated_at: v.activated_at?.toISOString() ?? null,
    serving: v.id === servingId,
  };
}
