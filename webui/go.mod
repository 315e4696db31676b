module netwatch.dev/webui

go 1.26
