max_line_length = 150
exclude_files = { "spec/fixtures/node_modules/**" }
