"""`altkraft-install` (the installer is built in its own issue; for now it explains itself)."""
import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Install, upgrade and check an ALTKRAFT On-Premise host."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def main() -> None:
    cli(prog_name="altkraft-install")
