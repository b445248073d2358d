/**
 * Whether a package (a transport, the bench) can be imported: installed and built. Like
 * `requireServer`: a missing one skips with one clear line locally and throws under CI=true.
 */
export async function requirePackage(pkg: string): Promise<boolean> {
  try {
    await import(pkg);
    return true;
  } catch (err) {
    const line = `${pkg} cannot be imported (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
    if (process.env['CI'] === 'true') throw new Error(`${line}; CI builds every package first`, { cause: err });
    process.stderr.write(`skipping tests that need ${pkg}: ${line}\n`);
    return false;
  }
}
