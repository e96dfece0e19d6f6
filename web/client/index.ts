// The chat server's typed client: WebSocket chat (browser and Node) and the admin REST routes.
export { ChatClient } from './chat-client.ts';
export type { ChatClientEvents, ChatClientOptions, ChatOptions, ConnectionStatus, GenerateOptions, WebSocketConstructor, WebSocketLike } from './client-options.ts';
export { ReplyStream } from './reply-stream.ts';
export { ChatError, plainWords, type ClientErrorCode } from './errors.ts';
export type * from '../../server/protocol.ts';
export { AdminClient, type AdminStats, type ExportKind, type TrainingRunInfo } from './admin-client.ts';
