module netwatch.dev/ci/testsum

go 1.26.0
