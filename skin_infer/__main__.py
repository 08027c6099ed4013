from skin_infer.cli import app

app(prog_name="skin")
