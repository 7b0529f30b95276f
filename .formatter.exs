[
  inputs: ["mix.exs", ".formatter.exs", "{lib,test}/**/*.{ex,exs}"],
  line_length: 100
]
