/** A block hash, short, linked to the deployment's explorer when it has one (explorerBlockUrl). */
import { shortHash } from '../../format.ts';
import { explorerLink } from '../links.ts';

export function BlockLink({ hash, template, testId }: { hash: string; template: string; testId: string }) {
  const href = explorerLink(template, hash);
  const text = shortHash(hash);
  return href ? (
    <a class="mono" href={href} target="_blank" rel="noopener noreferrer" title={hash} data-testid={testId}>
      {text}
    </a>
  ) : (
    <span class="mono" title={hash} data-testid={testId}>
      {text}
    </span>
  );
}
