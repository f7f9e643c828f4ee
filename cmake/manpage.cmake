# cmake -P script run by the vfiobox_man target (cmake/install.cmake): vfiobox(1) from the CLI's
# own help: help2man formats `vfiobox --help` and `--version`; each subcommand's --help becomes a
# COMMANDS subsection, and cmake/vfiobox.h2m adds ENVIRONMENT, FILES and EXAMPLES.
# In: VFIOBOX, HELP2MAN, GZIP, INCLUDE (the .h2m template), RELDIR, OUT (the .1.gz to write).
get_filename_component(out_dir ${OUT} DIRECTORY)
set(h2m "[COMMANDS]\n")
foreach(sub topology groups run)
  execute_process(COMMAND ${VFIOBOX} ${sub} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "vfiobox ${sub} --help failed (${rc})")
  endif()
  # roff: a backslash is \e; a line must not start with a control character.
  string(REPLACE "\\" "\\e" help "${help}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" help "${help}")
  string(APPEND h2m ".SS \"vfiobox ${sub}\"\n.nf\n${help}.fi\n")
endforeach()
file(READ ${INCLUDE} static)
string(CONFIGURE "${static}" static @ONLY)
file(WRITE ${out_dir}/vfiobox.h2m "${h2m}\n${static}")
execute_process(
  COMMAND ${HELP2MAN} --no-info --no-discard-stderr --include=${out_dir}/vfiobox.h2m
          "--name=the Linux VFIO stack in userspace, on a simulated machine" --output=${out_dir}/vfiobox.1 ${VFIOBOX}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "help2man failed (${rc})")
endif()
execute_process(COMMAND ${GZIP} -9nf ${out_dir}/vfiobox.1 RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT EXISTS ${OUT})
  message(FATAL_ERROR "gzip failed (${rc})")
endif()
