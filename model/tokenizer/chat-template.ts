/**
 * Chat template: how a conversation becomes token ids, the same at training and serving time.
 *
 *   <|bos|> <|role|> content <|eot|> <|role|> content <|eot|> ... [<|assistant|>]
 *
 * Message contents go through `tok.encode`, which never yields special ids, so a message cannot
 * close its own turn or open another role by containing "<|eot|>" or "<|assistant|>" as text.
 */
import type { Tokenizer } from './bpe.ts';

type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

interface RenderedConversation {
  ids: number[];
  /**
   * 1 where the supervised fine-tuning loss applies: the content tokens of assistant messages and
   * their closing <|eot|> (so the model learns to stop); 0 for everything else.
   */
  mask: number[];
}

interface RenderOptions {
  /** Append <|assistant|> so the model continues with a reply (serving time). Default false. */
  addGenerationPrompt?: boolean;
  /**
   * Which assistant messages the mask covers (training time); default all. A message left out is
   * still context for the ones after it.
   */
  trainOn?: (message: ChatMessage) => boolean;
}

function roleToken(tok: Tokenizer, role: ChatRole): number {
  switch (role) {
    case 'system':
      return tok.special.system;
    case 'user':
      return tok.special.user;
    case 'assistant':
      return tok.special.assistant;
    default:
      throw new Error(`unknown chat role ${JSON.stringify(role)} (expected system, user or assistant)`);
  }
}

/** One message as tokens: <|role|> content <|eot|>. */
function renderMessage(tok: Tokenizer, message: ChatMessage): number[] {
  if (typeof message.content !== 'string') {
    throw new Error(`message content must be a string, got ${typeof message.content}`);
  }
  return [roleToken(tok, message.role), ...tok.encode(message.content), tok.special.eot];
}

export function renderConversation(
  tok: Tokenizer,
  messages: readonly ChatMessage[],
  opts: RenderOptions = {},
): RenderedConversation {
  const ids = [tok.special.bos];
  const mask = [0];
  for (const message of messages) {
    const tokens = renderMessage(tok, message);
    const trained = message.role === 'assistant' && (opts.trainOn?.(message) ?? true) ? 1 : 0;
    ids.push(...tokens);
    mask.push(0); // the role token is given, not predicted
    for (let i = 1; i < tokens.length; i++) mask.push(trained); // content + <|eot|>
  }
  if (opts.addGenerationPrompt) {
    ids.push(tok.special.assistant);
    mask.push(0);
  }
  return { ids, mask };
}

interface RenderedPrompt {
  /** Prompt ids ending with <|assistant|>; never longer than maxTokens. */
  ids: number[];
  /** How many messages (oldest first, after a leading system message) were left out. */
  droppedMessages: number;
  /** True when the last message had to be cut to its most recent tokens. */
  truncatedLastMessage: boolean;
  /** True when the leading system message had to be left out (only when nothing else fits). */
  droppedSystem: boolean;
}

/**
 * Renders a conversation for generation within a context of `maxTokens`:
 *  1. everything, if it fits;
 *  2. else <|bos|>, the leading system message (if any), and as many of the most recent messages
 *     as fit (whole messages; the oldest are dropped first);
 *  3. if not even the last message fits, its most recent content tokens are kept (still framed by
 *     its role token and <|eot|>); the system message is kept only if at least one content token
 *     of the last message fits beside it.
 * The result always ends with the generation prompt <|assistant|>. maxTokens must be >= 4
 * (<|bos|> <|role|> <|eot|> <|assistant|>).
 */
export function renderPrompt(
  tok: Tokenizer,
  messages: readonly ChatMessage[],
  maxTokens: number,
): RenderedPrompt {
  if (!Number.isInteger(maxTokens) || maxTokens < 4) {
    throw new Error(`maxTokens must be an integer >= 4 (bos, role, eot, generation prompt), got ${maxTokens}`);
  }
  const hasSystem = messages.length > 0 && messages[0].role === 'system';
  const systemTokens = hasSystem ? renderMessage(tok, messages[0]) : [];
  const turns = (hasSystem ? messages.slice(1) : messages).map((m) => renderMessage(tok, m));
  const framing = 2; // <|bos|> ... <|assistant|>

  const build = (system: number[], kept: number[][]): number[] => [
    tok.special.bos,
    ...system,
    ...kept.flat(),
    tok.special.assistant,
  ];

  // Keep the longest suffix of turns that fits beside the system message.
  let budget = maxTokens - framing - systemTokens.length;
  let firstKept = turns.length;
  while (firstKept > 0 && turns[firstKept - 1].length <= budget) {
    budget -= turns[firstKept - 1].length;
    firstKept--;
  }
  if (firstKept < turns.length || turns.length === 0) {
    if (turns.length === 0 && systemTokens.length + framing > maxTokens) {
      // Only a system message, and it is too long: keep its most recent tokens.
      const room = maxTokens - framing - 2;
      const content = systemTokens.slice(1, -1);
      const cropped = [systemTokens[0], ...content.slice(content.length - room), tok.special.eot];
      return { ids: build(cropped, []), droppedMessages: 0, truncatedLastMessage: true, droppedSystem: false };
    }
    return {
      ids: build(systemTokens, turns.slice(firstKept)),
      droppedMessages: firstKept,
      truncatedLastMessage: false,
      droppedSystem: false,
    };
  }

  // Not even the last message fits: keep its most recent content tokens.
  const last = turns[turns.length - 1];
  const lastContent = last.slice(1, -1);
  let system = systemTokens;
  let room = maxTokens - framing - system.length - 2;
  if (room < 1 && hasSystem) {
    system = [];
    room = maxTokens - framing - 2;
  }
  const cropped = [last[0], ...lastContent.slice(Math.max(0, lastContent.length - room)), tok.special.eot];
  return {
    ids: build(system, [cropped]),
    droppedMessages: turns.length - 1,
    truncatedLastMessage: true,
    droppedSystem: hasSystem && system.length === 0,
  };
}
