/**
 * An example programmatic reward for `npm run train -- ppo --reward-module examples/reward-letter-e.ts`:
 * 10 x the share of the letter "e" among the reply's non-space characters. Dense and easy to learn,
 * so it shows PPO working; replace it with any (prompt, reply) => number.
 */
export default function reward(_prompt: string, reply: string): number {
  const chars = reply.replace(/\s/g, '');
  return chars.length === 0 ? 0 : (10 * (chars.match(/e/g)?.length ?? 0)) / chars.length;
}
